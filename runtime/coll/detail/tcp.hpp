#pragma once
// The TCP backend, for ranks on different hosts: a full mesh of connections
// (made through the rendezvous store), a ring for allreduce, reduce_scatter
// and allgather (chunks of 1/n, sent in segments while the next arrives), a
// chain for broadcast, direct sends for send/recv.
//
// Every message carries the operation's descriptor; a rank that receives one
// that differs from its own aborts the group and tells every peer why, so all
// ranks fail with the same message. A peer whose connection drops fails the
// group at once, naming it; a silent one after the timeout.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/coll/backend.hpp"
#include "runtime/coll/shm.hpp"

namespace troupe::coll {

namespace tcp_detail {
constexpr std::uint32_t kMagic = 0x74726370;  // "trcp"
constexpr std::uint32_t kAbort = 0xdead;     // a header kind: the reason follows
}  // namespace tcp_detail

class TcpGroup final : public Backend {
 public:
  TcpGroup(const GroupSpec& spec, const std::atomic<bool>* cancel);
  ~TcpGroup() override;

  void allreduce(void* buf, std::size_t n, DType d, Op op) override;
  void reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) override;
  void allgather(const void* in, void* out, std::size_t n_in, DType d) override;
  void broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) override;
  void send(const void* buf, std::size_t n, DType d, std::uint32_t peer) override;
  void recv(void* buf, std::size_t n, DType d, std::uint32_t peer) override;
  void barrier() override;
  bool p2p_nonblocking() const override { return true; }
  void p2p_progress(std::span<Transfer* const> heads) override;
  void* alloc(std::size_t bytes) override;
  void abort(std::int32_t rank_at_fault, const std::string& why) noexcept override;
  std::string failure() const override;

  struct Header;

 private:
  struct Op_ {
    std::uint32_t kind;
    std::uint32_t dtype;
    std::uint64_t count;
    std::uint32_t op;
    std::int32_t root;
  };
  /// Sequence numbers in headers: collectives carry the group's count (the
  /// default); point-to-point messages are not numbered with them.
  static constexpr std::uint64_t kCollective = ~0ull, kPointToPoint = 0;
  /// Sends `slen` bytes (after a header) to `to` while receiving `rlen` bytes
  /// (after a header) from `from`, either may be -1; checks the header.
  void exchange(int to, const void* sbuf, std::size_t slen, int from, void* rbuf, std::size_t rlen, const Op_& op,
                std::uint64_t seq = kCollective);
  void ring_reduce_scatter(std::byte* buf, std::size_t n, DType d, Op op, const Op_& desc);
  void ring_allgather(std::byte* buf, std::size_t n, std::size_t es, const Op_& desc);
  [[noreturn]] void fail();
  void fail_with(std::int32_t rank, const std::string& why);  // abort, tell peers, throw
  std::string show(const Op_& o) const;

  GroupSpec spec_;
  const std::atomic<bool>* cancel_;
  std::vector<int> fds_;  // by rank (-1 for self)
  int wake_ = -1;         // eventfd: abort() wakes a waiting poll
  std::atomic<int> failed_{0};
  mutable std::mutex mu_;
  std::string reason_;
  std::uint64_t seq_ = 0;
  std::vector<std::unique_ptr<std::byte[]>> allocs_;
  std::vector<std::byte> tmp_;

  // Point to point without blocking (p2p_progress): per peer, the send being
  // written (one message at a time on a connection) and the message being
  // read, which goes straight into its receive when one is waiting on its
  // tag, else into that tag's inbox until one is.
  struct Incoming {
    std::vector<std::byte> hdr_bytes;  // the header as it arrives
    bool have_header = false;
    std::uint32_t tag = 0, dtype = 0;
    std::uint64_t count = 0, len = 0, got = 0;
    Transfer* into = nullptr;           // the receive it lands in, or
    std::vector<std::byte> parked;      // the inbox copy
  };
  struct PeerP2P {
    Transfer* sending = nullptr;
    Incoming in;
    std::vector<std::vector<std::byte>> inbox[kP2PTags];  // whole messages nobody has received yet
    std::vector<std::pair<std::uint32_t, std::uint64_t>> inbox_desc[kP2PTags];  // their dtype and count
  };
  std::vector<PeerP2P> p2p_;
  std::vector<char> p2p_read_;  // p2p_progress: the peers to read from (reused: it runs in a tight loop)
  void p2p_read(std::uint32_t peer, std::span<Transfer* const> heads);
  void p2p_take(Transfer& t, std::uint32_t dtype, std::uint64_t count);
};

/// Every message starts with one (the operation's descriptor and the bytes that follow).
struct TcpGroup::Header {
  std::uint32_t magic;
  std::uint32_t kind;
  std::uint64_t seq;
  std::uint32_t dtype;
  std::uint32_t op;
  std::uint64_t count;
  std::int32_t root;
  std::uint32_t from;
  std::uint64_t len;
};

}  // namespace troupe::coll
