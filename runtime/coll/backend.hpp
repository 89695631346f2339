#pragma once
// What a collective backend does; the group's thread calls these in order.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "runtime/coll/types.hpp"

namespace troupe::coll {

/// Operation kinds as the backends put them in their descriptors.
enum Kind : std::uint32_t { k_none, k_allreduce, k_reduce_scatter, k_allgather, k_broadcast, k_barrier, k_alloc, k_send };
const char* kind_name(std::uint32_t k) noexcept;
/// [begin, end) of part c when n elements are split into `parts` near-equal parts.
inline std::pair<std::size_t, std::size_t> chunk(std::size_t n, std::size_t parts, std::size_t c) {
  return {n * c / parts, n * (c + 1) / parts};
}

/// memcpy that accepts empty ranges with null pointers (empty spans have them).
inline void copy_bytes(void* dst, const void* src, std::size_t n) noexcept {
  if (n) __builtin_memcpy(dst, src, n);
}

/// A small operation the caller's own thread may run, with no hop to the
/// group's thread (what a latency-bound caller, waiting at once, pays most).
struct FastOp {
  std::uint32_t kind = k_none;  ///< k_allreduce or k_barrier
  void* buf = nullptr;
  std::size_t n = 0;
  DType dtype = DType::f32;
  Op op = Op::sum;
  // The backend's own bookkeeping between start and finish.
  std::uint64_t seq = 0, gen = 0;
};

/// Point-to-point channels per (sender, receiver) pair: transfers with
/// different tags never wait for each other; those with the same tag are
/// received in the order they were sent.
inline constexpr std::uint32_t kP2PTags = 4;

/// One send or receive of a batch (Group::batch), with the progress the
/// backend keeps while it moves it.
struct Transfer {
  bool is_send = true;
  void* buf = nullptr;  ///< the data (sends only read it)
  std::size_t n = 0;    ///< elements
  DType dtype = DType::f32;
  std::uint32_t peer = 0;
  std::uint32_t tag = 0;
  // Kept by the backend.
  bool done = false;
  std::size_t progress = 0;  ///< pieces (shm) or bytes (tcp) moved so far
  std::chrono::steady_clock::time_point since{};  ///< its last progress (for the timeout)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual void allreduce(void* buf, std::size_t n, DType d, Op op) = 0;
  virtual void reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) = 0;
  virtual void allgather(const void* in, void* out, std::size_t n_in, DType d) = 0;
  virtual void broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) = 0;
  /// Point to point; `peer` is another rank of the group (Group checks it).
  virtual void send(const void* buf, std::size_t n, DType d, std::uint32_t peer) = 0;
  virtual void recv(void* buf, std::size_t n, DType d, std::uint32_t peer) = 0;
  virtual void barrier() = 0;

  /// Whether this backend moves transfers without blocking (p2p_progress):
  /// the group's thread then keeps every channel's transfers going at once,
  /// so a send never waits for unrelated receives. Otherwise a batch runs
  /// with p2p_batch, to completion, in issue order.
  virtual bool p2p_nonblocking() const { return false; }
  /// Advances every transfer in `heads` (at most one per channel: the oldest
  /// unfinished one) as far as it can without waiting, setting `done` on those
  /// that finish. A send is done once its data is out of its buffer. Throws
  /// CollectiveError when the group fails (a dead or silent peer, a receive
  /// whose size or dtype differs from the send).
  virtual void p2p_progress(std::span<Transfer* const> heads) { (void)heads; }
  /// Blocking backends: runs the batch's sends and receives together (NCCL:
  /// one ncclGroupStart/End). The default runs them one by one, for each
  /// peer sends first on the lower rank and receives first on the higher, so
  /// a pair exchanging within one batch does not wait on itself.
  virtual void p2p_batch(std::span<Transfer> batch, std::uint32_t my_rank);
  /// A doorbell for the group's thread while transfers are stalled: peers
  /// ring it when they post or take a piece, so the thread sleeps instead of
  /// polling (a polling thread takes the cores the stages compute on, and the
  /// scheduler stops waking it promptly). bell_arm marks this rank asleep and
  /// returns the bell's value; poll once more after it (bell_disarm if that
  /// found work), then bell_wait sleeps
  /// until the bell moves past it or `max` passes (then re-check the peers).
  /// bell_ring_self wakes this rank's sleeper (new local work). Backends
  /// without one return false from has_bell.
  virtual bool has_bell() const { return false; }
  virtual std::uint32_t bell_arm() { return 0; }
  virtual void bell_wait(std::uint32_t seen, std::chrono::microseconds max) { (void)seen; (void)max; }
  virtual void bell_disarm() {}
  virtual void bell_ring_self() noexcept {}
  /// Collective: a buffer for this rank (shared memory where the backend has it).
  virtual void* alloc(std::size_t bytes) = 0;
  /// Fails the group for everyone (any thread).
  virtual void abort(std::int32_t rank_at_fault, const std::string& why) noexcept = 0;
  /// Why the group failed ("" if it has not).
  virtual std::string failure() const = 0;

  /// Starts `f` if this backend runs it on the caller's thread: publishes this
  /// rank's part without waiting for anyone. False (and nothing done) if not.
  virtual bool fast_start(FastOp& f) { (void)f; return false; }
  /// Whether fast_finish would return without waiting (or the group failed).
  virtual bool fast_ready(const FastOp& f) { (void)f; return true; }
  /// Completes a started `f`, waiting for the peers (with the usual timeout,
  /// abort and dead-peer checks); on any thread, before any other operation.
  virtual void fast_finish(FastOp& f) { (void)f; }

  // Device backends.
  /// Later work waits for `event` (a cudaEvent_t from gpu::record_ready).
  virtual void wait_event(void* event) { (void)event; }
  /// Backends that queue work and return at once (NCCL): the ticket of the
  /// last operation issued. 0: every operation is complete when it returns.
  virtual std::uint64_t ticket() noexcept { return 0; }
  /// Operations at whose first barrier this rank arrived last (0: not known).
  virtual std::uint64_t times_last() const noexcept { return 0; }
  /// The highest ticket whose work has finished; throws CollectiveError once
  /// the group has failed.
  virtual std::uint64_t progress() { return 0; }
};

}  // namespace troupe::coll
