#pragma once
// Collective groups, as the member actors use them.
//
//   // driver: every member gets rank i of group "dp"
//   troupe::coll::create_group(rt, replicas, {.name = "dp"});
//   // inside a member actor's method:
//   auto g = troupe::coll::group("dp");
//   auto grads = g->alloc<float>(n);              // in the shared mapping: reduced in place
//   co_await g->allreduce(grads, troupe::coll::Op::avg);
//
// Every operation returns a Ref at once and runs on the group's own thread,
// in the order issued, so compute can overlap it. Small host operations
// (allreduce up to 256 KiB, barrier) issued while the group is idle run on the
// caller's thread instead when every peer is already there (a few us, no
// thread hop); one whose peers have not arrived within 20 us goes on on the
// group's thread, and its Ref completes from there. Buffers must stay alive and
// untouched until the Ref completes. All ranks must issue the same operations
// in the same order; a rank that disagrees (size, dtype, op, root), a dead
// member, or a destroyed group fails every rank's pending and later
// operations with CollectiveError naming the rank, never a hang.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "runtime/telemetry.hpp"
#include "runtime/coll/backend.hpp"
#include "runtime/coll/shm.hpp"
#include "runtime/coll/types.hpp"
#include "runtime/ref.hpp"
#include "runtime/trace.hpp"

namespace troupe::coll {

class Group : public std::enable_shared_from_this<Group> {
 public:
  /// Starts the group's thread, which maps the shared segment and waits for
  /// every rank to join before the first operation runs.
  explicit Group(GroupSpec spec);
  ~Group();  ///< destroy()s
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  /// This rank's counters (`troupe groups|top`): operations, bytes, time on
  /// the backend, and how often it was the last to arrive (shm groups).
  telemetry::GroupSample sample() const;
  std::uint32_t rank() const noexcept { return spec_.rank; }
  std::uint32_t size() const noexcept { return spec_.world; }
  const std::string& name() const noexcept { return spec_.name; }
  std::uint64_t uid() const noexcept { return spec_.uid; }
  /// shm, tcp, nccl or cuda_local.
  BackendKind backend() const noexcept { return spec_.backend; }
  /// Where the group's buffers live.
  Memory memory() const noexcept { return spec_.memory; }
  /// Device groups: the GPU this rank's buffers are on (-1 for host groups).
  int device() const noexcept;
  /// Whether transfers between two ranks are taken in the order they are
  /// posted, whatever their tag, one batch at a time (device groups: NCCL
  /// matches a communicator's sends and receives in order). Host groups keep
  /// tags apart and move every pending transfer at once.
  bool p2p_in_order() const noexcept { return spec_.memory != Memory::host; }

  template <class T>
  Ref<void> allreduce(std::span<T> buf, Op op = Op::sum) {
    count(buf.size_bytes());
    const auto t0 = trace_t0();
    return traced(submit([=](Backend& g) { g.allreduce(buf.data(), buf.size(), dtype_of<T>(), op); },
                         FastOp{k_allreduce, buf.data(), buf.size(), dtype_of<T>(), op}),
                  "allreduce", buf.size_bytes(), t0);
  }
  /// `in` holds size() blocks of out.size() elements; block r, reduced, lands in `out` on rank r.
  template <class T>
  Ref<void> reduce_scatter(std::span<const T> in, std::span<T> out, Op op = Op::sum) {
    if (in.size() != out.size() * size())
      return fail_now(fmt::format("reduce_scatter: input has {} elements, expected {} x {}", in.size(), size(), out.size()));
    count(in.size_bytes());
    const auto t0 = trace_t0();
    return traced(submit([=](Backend& g) { g.reduce_scatter(in.data(), out.data(), out.size(), dtype_of<T>(), op); }),
                  "reduce_scatter", in.size_bytes(), t0);
  }
  /// `out` gets every rank's `in`, in rank order.
  template <class T>
  Ref<void> allgather(std::span<const T> in, std::span<T> out) {
    if (out.size() != in.size() * size())
      return fail_now(fmt::format("allgather: output has {} elements, expected {} x {}", out.size(), size(), in.size()));
    count(out.size_bytes());
    const auto t0 = trace_t0();
    return traced(submit([=](Backend& g) { g.allgather(in.data(), out.data(), in.size(), dtype_of<T>()); }),
                  "allgather", out.size_bytes(), t0);
  }
  template <class T>
  Ref<void> broadcast(std::span<T> buf, std::uint32_t root) {
    count(buf.size_bytes());
    const auto t0 = trace_t0();
    return traced(submit([=](Backend& g) { g.broadcast(buf.data(), buf.size(), dtype_of<T>(), root); }), "broadcast",
                  buf.size_bytes(), t0);
  }
  /// Point to point. A send completes once its data has left `buf` (the
  /// receiver need not have taken it yet); a receive once the data is in
  /// `buf`. Transfers between two ranks with the same tag arrive in the order
  /// they were sent; different tags are separate channels (0 to kP2PTags - 1).
  /// Host groups move every pending transfer at once, so neighbours that
  /// both send and then receive never wait on each other. Device groups take
  /// a pair's transfers in posted order whatever the tag (p2p_in_order; a tag
  /// that differs from its send's fails the group): post an exchange as one
  /// batch.
  template <class T>
  Ref<void> send(std::span<const T> buf, std::uint32_t peer, std::uint32_t tag = 0) {
    return batch(Batch().send(buf, peer, tag));
  }
  template <class T>
  Ref<void> recv(std::span<T> buf, std::uint32_t peer, std::uint32_t tag = 0) {
    return batch(Batch().recv(buf, peer, tag));
  }
  /// Sends and receives issued together and completed together, as between
  /// ncclGroupStart and ncclGroupEnd: the Ref completes when all have (or
  /// fails with the first error).
  class Batch {
   public:
    template <class T>
    Batch& send(std::span<const T> buf, std::uint32_t peer, std::uint32_t tag = 0) {
      add(true, const_cast<T*>(buf.data()), buf.size(), dtype_of<T>(), peer, tag);
      return *this;
    }
    template <class T>
    Batch& recv(std::span<T> buf, std::uint32_t peer, std::uint32_t tag = 0) {
      add(false, buf.data(), buf.size(), dtype_of<T>(), peer, tag);
      return *this;
    }
    bool empty() const noexcept { return items_.empty(); }
    std::size_t size() const noexcept { return items_.size(); }

   private:
    friend class Group;
    void add(bool is_send, void* buf, std::size_t n, DType d, std::uint32_t peer, std::uint32_t tag) {
      Transfer t;
      t.is_send = is_send;
      t.buf = buf;
      t.n = n;
      t.dtype = d;
      t.peer = peer;
      t.tag = tag;
      items_.push_back(t);
    }
    std::vector<Transfer> items_;
  };
  Ref<void> batch(Batch b);
  Ref<void> barrier();

  /// A buffer of n elements in the group's shared mapping (collective: every
  /// rank allocates the same sizes in the same order). Allreduce on such
  /// buffers works in place, with no copy in or out. The buffer lives as long
  /// as the group.
  template <class T>
  Ref<std::span<T>> alloc(std::size_t n) {
    Promise<std::span<T>> p;
    auto ref = p.ref();
    auto shared = std::make_shared<Promise<std::span<T>>>(std::move(p));
    auto out = std::make_shared<T*>(nullptr);
    enqueue([out, n](Backend& g) { *out = static_cast<T*>(g.alloc(n * sizeof(T))); },
            [shared, out, n](std::exception_ptr e) {
              if (e)
                shared->set_error(e);
              else
                shared->set_value(std::span<T>(*out, n));
            });
    return ref;
  }

  /// Device groups (GroupOptions::memory = Memory::cuda): operations issued from
  /// now on first wait, on the device, for the work queued on `stream` (a
  /// cudaStream_t; null: the legacy default stream) at the time each is
  /// issued. Without it, device buffers must be complete when an operation
  /// is issued. Operations finish in issue order; their Refs complete once
  /// the device work has.
  void after(void* stream);

  /// Fails every rank's pending and later operations with `why`.
  void abort(const std::string& why);
  /// Ends the group here; the other ranks' operations fail (destroyed).
  void destroy();

 private:
  using OpFn = std::function<void(Backend&)>;
  using DoneFn = std::function<void(std::exception_ptr)>;
  // A batch of transfers the group's thread moves while it does other work.
  struct P2PBatch {
    std::vector<Transfer> items;
    std::size_t left = 0;
    DoneFn done;
    OpFn before;  // device groups: waits for the work that wrote the sends' buffers (after())
  };
  struct Entry {
    OpFn op;
    DoneFn done;
    std::uint64_t id = 0;  // issue order
    std::shared_ptr<P2PBatch> p2p;  // a batch for a non-blocking backend (op unused)
  };
  class OpState;  // a Ref's state whose blocking waiter helps (help())
  /// How long a caller running a fast operation waits for its peers before
  /// leaving it to the group's thread.
  static constexpr std::chrono::microseconds kInlineWait{200};

  Ref<void> submit(OpFn op, FastOp fast = {});
  // `troupe trace`: an operation's span, from its issue to its completion,
  // on this rank's track (a no-op unless recording).
  static std::int64_t trace_t0() noexcept { return trace::on() ? trace::now_ns() : 0; }
  Ref<void> traced(Ref<void> r, const char* what, std::size_t bytes, std::int64_t t0);
  // batch() once counted: checks the transfers and moves or queues them.
  Ref<void> post(Batch b);
  std::atomic<std::uint64_t> traced_session_{0};  // the session its track was named in
  // Watching: operations issued and their payload bytes; time on the backend.
  void count(std::size_t bytes) noexcept {
    ops_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> ops_{0}, bytes_{0}, busy_ns_{0};
  // Runs `fast` on this thread if the group is idle; false if it did not start it.
  bool try_inline(FastOp& fast, std::uint64_t id, Ref<void>& out);
  // A thread blocked on operation `id`: runs the queued operations up to it
  // here, unless the group's thread (or another helper) is at work.
  void help(std::uint64_t id);
  // Runs `op` on the backend: the error to complete it with, or null.
  std::exception_ptr execute(const OpFn& op);
  // The promise of operation `id`'s Ref; complete_with completes it.
  std::shared_ptr<Promise<void>> promise_for(std::uint64_t id);
  static DoneFn complete_with(std::shared_ptr<Promise<void>> p);
  OpFn ordered(OpFn op);  // device groups: wait for the producer stream first
  void enqueue(OpFn op, DoneFn done, std::uint64_t id = 0);
  Ref<void> fail_now(std::string why);
  void run();
  // The caller's thread, when nothing is in flight on a host group: moves
  // what of `items` can move now (false if it could not try). Throws if the
  // group failed.
  bool p2p_inline(std::vector<Transfer>& items);
  // The group's thread: takes a batch's transfers onto their channels (p2p_busy_ set as it left the queue).
  void p2p_start(std::shared_ptr<P2PBatch> b);
  // Advances every channel's oldest transfer; completes finished batches.
  // On failure, fails every batch in flight.
  bool p2p_poll();  // whether anything moved
  void p2p_fail_all(std::exception_ptr e);

  GroupSpec spec_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // With mu_ held: wakes the group's thread for new work (cv_ and the doorbell).
  void wake_locked();
  // How long stalled transfers are polled before the thread sleeps on the doorbell.
  static constexpr long kBellAfterUs = 20;
  std::deque<Entry> queue_;
  std::atomic<std::uint64_t> next_id_{1};
  std::unique_ptr<Backend> shm_;   // made on the group's thread (shared memory or TCP)
  std::string failed_;             // sticky failure
  void* producer_ = nullptr;       // after(): the stream device buffers come from
  bool has_producer_ = false;
  std::string pending_abort_;      // an abort asked before the segment was mapped
  bool closing_ = false;
  bool running_ = false;           // an operation is on the backend (group thread or a caller)
  bool p2p_busy_ = false;          // transfers are in flight on the group's thread (mu_)
  // Group's thread only: transfers in flight, per channel (peer, tag, direction), oldest first.
  std::map<std::tuple<std::uint32_t, std::uint32_t, bool>, std::deque<std::pair<Transfer*, std::shared_ptr<P2PBatch>>>>
      channels_;
  std::vector<Transfer*> p2p_heads_;       // p2p_poll's, reused
  std::vector<std::size_t> p2p_before_;
  std::atomic<bool> cancel_{false};  // stops a join still waiting for peers
  std::atomic<bool> has_work_{false};  // lets the group's thread poll without the lock
  std::thread thread_;
};

/// Inside a member actor: the group it was given under `name` (create_group).
/// Throws UsageError if this actor is not a member of such a group.
std::shared_ptr<Group> group(const std::string& name);

namespace detail {
/// Registers `spec` for actor `actor_id` of this process (replacing any older
/// group of that name for it). Used by create_group and by worker processes.
void declare(std::uint64_t actor_id, const GroupSpec& spec);
/// Every group of this process, sampled (`troupe groups|top`).
std::vector<telemetry::GroupSample> group_samples();
/// Aborts the group `name` (instance `uid`) of actor `actor_id` in this process, if any;
/// uid 0: fails its init_group in progress instead (await_group).
void abort_member(std::uint64_t actor_id, const std::string& name, std::uint64_t uid, const std::string& why);
/// A Ref completed by the next declare() of group `name` for actor `actor_id`,
/// or failed (CollectiveError, `why`) by abort_member with uid 0.
Ref<std::shared_ptr<Group>> await_group(std::uint64_t actor_id, const std::string& name);
/// Puts this layer's handlers on process actors' links (link.cpp); run
/// during static initialisation by any program that uses groups.
bool install_link_hooks();
}  // namespace detail

}  // namespace troupe::coll
