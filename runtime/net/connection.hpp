#pragma once
// One control connection (TCP or Unix socket) carrying Cap'n Proto frames.
//
// Everything runs on the connection's strand: one reader coroutine that hands
// each validated frame to the handler, one writer coroutine that drains the
// outbound queue. send() and close() may be called from any thread: a lone
// frame to an idle writer is written on the sender's thread; otherwise send()
// appends under a short lock and posts to the strand only when the writer is
// asleep, so a burst of calls costs one wake-up and one write, not one each. A frame
// that fails to decode closes the connection (with the reason logged by the
// owner); it never takes the process down.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "runtime/net/frame.hpp"

namespace troupe::net {

namespace asio = boost::asio;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Socket = asio::generic::stream_protocol::socket;
  using FrameHandler = std::function<void(Frame)>;
  using CloseHandler = std::function<void(const std::string& reason)>;

  /// `s` must have been created on a strand (make_strand) executor.
  static std::shared_ptr<Connection> make(Socket s, std::string peer, std::size_t max_frame = kMaxFrameBytes);

  /// Reads one frame (used by handshakes, before start()).
  asio::awaitable<Frame> read_frame();
  /// Writes one frame directly (used by handshakes, before start()).
  asio::awaitable<void> write_frame(kj::Array<capnp::word> frame);

  /// Starts the reader and writer coroutines. `on_frame` runs on the strand;
  /// `on_close` runs once, with the reason.
  void start(FrameHandler on_frame, CloseHandler on_close);
  /// Queues a frame for the writer (any thread).
  void send(kj::Array<capnp::word> frame);
  /// Sends what is queued, then closes (any thread).
  void finish();
  /// Closes the socket (any thread); `on_close` gets `reason`.
  void close(std::string reason);

  const std::string& peer() const noexcept { return peer_; }
  Socket::executor_type executor() { return socket_.get_executor(); }
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

 private:
  Connection(Socket s, std::string peer, std::size_t max_frame);
  asio::awaitable<void> reader();
  /// Reads until at least `n` bytes are buffered (n <= kInBuffer).
  asio::awaitable<void> fill(std::size_t n);
  /// Moves up to `n` buffered bytes to `dst`; returns how many.
  std::size_t take_buffered(void* dst, std::size_t n);
  asio::awaitable<void> writer();
  /// Turns a batch of frames into buffers for one gathered write: runs of
  /// small frames are copied into `flat_`, large ones are written in place.
  /// `skip`: bytes of the first frame that send() already wrote.
  void gather(const std::vector<kj::Array<capnp::word>>& batch, std::size_t skip);
  void shut(const std::string& reason);

  Socket socket_;
  std::string peer_;
  std::size_t max_frame_;
  asio::steady_timer wake_;
  std::mutex out_mu_;
  std::vector<kj::Array<capnp::word>> out_;  // guarded by out_mu_
  bool writer_asleep_ = false;               // guarded: the next send() must wake it
  bool out_closed_ = false;                  // guarded: frames sent now are dropped
  bool finishing_ = false;                   // guarded
  int fd_ = -1;                              // guarded: the socket, from start() until shut()
  std::size_t head_written_ = 0;             // guarded: bytes of out_.front() already sent
  std::chrono::steady_clock::time_point last_send_{};  // guarded
  // Sends closer together than this are a burst: queued, not written inline.
  static constexpr std::chrono::microseconds kBurstGap{20};
  // The writer's own buffers, kept between batches so a steady stream of
  // calls allocates nothing here.
  std::vector<std::byte> flat_;
  std::vector<asio::const_buffer> bufs_;
  struct Piece {                // gather(): one frame written in place, or
    const std::byte* in_place;  // (null) a run of copies: flat_[begin, begin + size)
    std::size_t begin, size;
  };
  std::vector<Piece> pieces_;
  // Input is read in large chunks and frames are cut from the buffer: one
  // recv for a burst of small frames instead of two or three per frame.
  static constexpr std::size_t kInBuffer = 64 * 1024;
  std::vector<std::byte> in_ = std::vector<std::byte>(kInBuffer);
  std::size_t in_begin_ = 0, in_end_ = 0;
  FrameHandler on_frame_;
  CloseHandler on_close_;
  std::atomic<bool> closed_{false};
};

}  // namespace troupe::net
