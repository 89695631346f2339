#include "runtime/coll/group.hpp"

#include <chrono>

#include <fmt/format.h>

#include "runtime/coll/detail/gpu.hpp"
#include "runtime/coll/detail/tcp.hpp"
#include "runtime/context.hpp"

namespace troupe::coll {

class Group::OpState final : public troupe::detail::State<void> {
 public:
  OpState(std::weak_ptr<Group> g, std::uint64_t id) : troupe::detail::State<void>(1), group_(std::move(g)), id_(id) {}
  void help() const noexcept override {
    if (auto g = group_.lock()) g->help(id_);
  }

 private:
  std::weak_ptr<Group> group_;
  std::uint64_t id_;
};

int Group::device() const noexcept {
  if (spec_.memory != Memory::cuda) return -1;
  return spec_.device >= 0 ? spec_.device : gpu::default_device();
}

Group::Group(GroupSpec spec) : spec_(std::move(spec)) {
  thread_ = std::thread([this]() { run(); });
}

Group::~Group() { destroy(); }

void Group::run() {
  try {
    std::unique_ptr<Backend> shm;
    if (spec_.memory == Memory::cuda)
      shm = gpu::make_backend(spec_, &cancel_);
    else if (spec_.backend == BackendKind::tcp)
      shm = std::make_unique<TcpGroup>(spec_, &cancel_);
    else
      shm = std::make_unique<ShmGroup>(spec_, &cancel_);
    std::lock_guard lock(mu_);
    shm_ = std::move(shm);
    if (!pending_abort_.empty()) shm_->abort(static_cast<std::int32_t>(spec_.rank), pending_abort_);
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    // Aborted while joining (a member died, the group was destroyed): that
    // reason, not the "left the group" the interrupted join reports.
    failed_ = pending_abort_.empty() ? e.what() : fmt::format("group '{}': {}", spec_.name, pending_abort_);
  }
  // Operations a device backend has queued and not finished, by ticket.
  std::deque<std::pair<std::uint64_t, DoneFn>> inflight;
  auto complete_finished = [&]() {
    if (inflight.empty()) return;
    std::exception_ptr error;
    std::uint64_t upto = 0;
    try {
      upto = shm_->progress();
    } catch (...) {
      error = std::current_exception();
      std::lock_guard lock(mu_);
      if (failed_.empty()) failed_ = shm_->failure();
    }
    while (!inflight.empty() && (error || inflight.front().first <= upto)) {
      auto done = std::move(inflight.front().second);
      inflight.pop_front();
      done(error);
    }
  };
  for (;;) {
    OpFn op;
    DoneFn done;
    // Poll briefly before sleeping: a rank that issues operations back to back
    // (a training step's buckets, a benchmark) then never pays a wake-up.
    // While device work is in flight, poll it until it finishes.
    // While transfers are in flight, poll them too; once nothing has moved
    // for a few us, sleep on the backend's doorbell (its peers ring it when
    // they post or take a piece; new work here rings it too), waking every
    // 2 ms to check the peers. A thread that kept polling would take the
    // cores the stages compute on, and the kernel would stop waking it
    // promptly. Backends without a doorbell nap between polls (50 us, 1 ms
    // once nothing has moved for 20 ms).
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
    unsigned idle = 0;
    std::chrono::steady_clock::time_point idle_since{};
    while (!has_work_.load(std::memory_order_acquire) &&
           (!inflight.empty() || !channels_.empty() || std::chrono::steady_clock::now() < until)) {
      complete_finished();
      if (!channels_.empty()) {
        idle = p2p_poll() ? 0 : idle + 1;
        if (idle == 1) idle_since = std::chrono::steady_clock::now();
        if (idle > 1 && shm_->has_bell() && inflight.empty() &&
            std::chrono::steady_clock::now() - idle_since > std::chrono::microseconds(kBellAfterUs)) {
          const std::uint32_t seen = shm_->bell_arm();
          if (has_work_.load(std::memory_order_seq_cst) || p2p_poll()) {
            shm_->bell_disarm();
            idle = 0;
          } else {
            shm_->bell_wait(seen, std::chrono::milliseconds(2));
          }
          continue;
        }
        if (idle > 256 && !shm_->has_bell()) {
          const bool long_idle = std::chrono::steady_clock::now() - idle_since > std::chrono::milliseconds(20);
          std::unique_lock lock(mu_);
          cv_.wait_for(lock, std::chrono::microseconds(long_idle ? 1000 : 50), [&]() { return has_work_.load(); });
          continue;
        }
      }
      std::this_thread::yield();
    }
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&]() { return closing_ || (!queue_.empty() && !running_); });
      if (running_) {  // closing while a caller runs a fast operation: it fails (aborted) and finishes
        lock.unlock();
        std::this_thread::yield();
        continue;
      }
      if (queue_.empty()) {
        lock.unlock();
        // Closing: transfers in flight fail (the backend was aborted), and
        // what is still on the device finishes or fails first.
        if (!channels_.empty())
          p2p_fail_all(std::make_exception_ptr(CollectiveError(fmt::format("group '{}' was destroyed", spec_.name))));
        while (!inflight.empty()) {
          complete_finished();
          std::this_thread::yield();
        }
        return;
      }
      const bool nonblocking_p2p = queue_.front().p2p && shm_ && shm_->p2p_nonblocking();
      if (!nonblocking_p2p && !channels_.empty()) {
        // Any other operation waits until the transfers before it are done.
        lock.unlock();
        while (!channels_.empty()) {
          if (!p2p_poll()) std::this_thread::yield();
        }
        continue;
      }
      if (nonblocking_p2p) {
        auto b = std::move(queue_.front().p2p);
        queue_.pop_front();
        has_work_.store(!queue_.empty() || closing_, std::memory_order_release);
        // Busy from the moment it leaves the queue: a caller's next batch must
        // not move inline (p2p_inline) before this one is on its channels, or
        // it would overtake it on a channel they share.
        p2p_busy_ = true;
        const std::string failed = failed_;
        lock.unlock();
        auto give_up = [&](std::exception_ptr e) {
          if (channels_.empty()) {
            std::lock_guard relock(mu_);
            p2p_busy_ = false;
          }
          b->done(e);
        };
        if (!failed.empty()) {
          give_up(std::make_exception_ptr(CollectiveError(failed)));
          continue;
        }
        if (b->before) {
          try {
            b->before(*shm_);
          } catch (...) {
            give_up(std::current_exception());
            continue;
          }
        }
        p2p_start(std::move(b));
        continue;
      }
      op = std::move(queue_.front().op);
      done = std::move(queue_.front().done);
      queue_.pop_front();
      has_work_.store(!queue_.empty() || closing_, std::memory_order_release);
      running_ = true;
    }
    const auto before = shm_ ? shm_->ticket() : 0;  // no backend: the group failed to form (execute says so)
    auto error = execute(op);  // catches everything
    const auto after = shm_ ? shm_->ticket() : 0;
    {
      // The backend is free for callers again before the Ref completes: the
      // waiter's next operation can then run on its own thread.
      std::lock_guard lock(mu_);
      running_ = false;
    }
    if (!error && (after != before || !inflight.empty())) {
      // Queued on the device: it completes in order, once its work has finished.
      inflight.emplace_back(after, std::move(done));
      complete_finished();
      continue;
    }
    done(error);
  }
}

std::exception_ptr Group::execute(const OpFn& op) {
  {
    std::lock_guard lock(mu_);
    if (!failed_.empty()) return std::make_exception_ptr(CollectiveError(failed_));
  }
  const auto t0 = std::chrono::steady_clock::now();
  struct Busy {  // counted however the operation ends
    std::atomic<std::uint64_t>& ns;
    std::chrono::steady_clock::time_point t0;
    ~Busy() {
      ns.fetch_add(static_cast<std::uint64_t>(
                       std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count()),
                   std::memory_order_relaxed);
    }
  } busy{busy_ns_, t0};
  try {
    op(*shm_);
    return nullptr;
  } catch (const CollectiveError& e) {
    std::lock_guard lock(mu_);
    if (failed_.empty() && !shm_->failure().empty()) failed_ = e.what();  // sticky once the group failed
    return std::current_exception();
  } catch (...) {
    return std::current_exception();
  }
}

void Group::after(void* stream) {
  std::lock_guard lock(mu_);
  producer_ = stream;
  has_producer_ = true;
}

Group::OpFn Group::ordered(OpFn op) {
  bool has_producer;
  void* stream;
  {
    std::lock_guard lock(mu_);
    has_producer = has_producer_;
    stream = producer_;
  }
  if (spec_.memory != Memory::cuda || !has_producer) return op;
  auto ready = gpu::record_ready(stream);  // now, on the caller's thread: what was queued before this call
  return [ready, op = std::move(op)](Backend& g) {
    g.wait_event(ready.get());
    op(g);
  };
}

bool Group::try_inline(FastOp& fast, std::uint64_t id, Ref<void>& out) {
  {
    std::lock_guard lock(mu_);
    if (!shm_ || closing_ || running_ || p2p_busy_ || !queue_.empty() || !failed_.empty()) return false;
    running_ = true;
  }
  bool started = false, late = false;
  auto error = execute([&](Backend& g) {
    if (!(started = g.fast_start(fast))) return;
    const auto until = std::chrono::steady_clock::now() + kInlineWait;
    for (unsigned spins = 0; !g.fast_ready(fast); ++spins) {
      if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        continue;
      }
      // Ranks may outnumber cores: let the late one run.
      std::this_thread::yield();
      if (std::chrono::steady_clock::now() >= until) {
        late = true;
        return;
      }
    }
    g.fast_finish(fast);
  });
  Entry rest;
  if (late) {
    // The peers are late: the group's thread (or a helping waiter) finishes
    // it, first in line.
    auto p = promise_for(id);
    out = p->ref();
    rest = Entry{[fast](Backend& g) mutable { g.fast_finish(fast); }, complete_with(std::move(p)), id, nullptr};
  } else if (started || error) {
    out = error ? Ref<void>::from_error(error) : Ref<void>::from_value();
  }
  bool wake;
  {
    std::lock_guard lock(mu_);
    running_ = false;
    if (late) {
      queue_.push_front(std::move(rest));
      has_work_.store(true, std::memory_order_release);
    }
    wake = !queue_.empty();  // else the group's thread sleeps on: waking it costs every rank a core
    if (wake && shm_) shm_->bell_ring_self();
  }
  if (wake) cv_.notify_one();
  return started || error;
}

void Group::help(std::uint64_t id) {
  std::unique_lock lock(mu_);
  // Transfers stay with the group's thread, which moves them all at once.
  if (running_ || closing_ || !shm_ || spec_.memory != Memory::host || p2p_busy_ || queue_.empty() || queue_.front().id > id)
    return;
  running_ = true;
  while (!queue_.empty() && queue_.front().id <= id && !queue_.front().p2p) {
    Entry e = std::move(queue_.front());
    queue_.pop_front();
    has_work_.store(!queue_.empty(), std::memory_order_release);
    lock.unlock();
    e.done(execute(e.op));
    lock.lock();
  }
  running_ = false;
  const bool wake = !queue_.empty();
  if (wake) shm_->bell_ring_self();
  lock.unlock();
  if (wake) cv_.notify_one();
}

std::shared_ptr<Promise<void>> Group::promise_for(std::uint64_t id) {
  // Host groups: a caller that blocks on the Ref (get()) runs the queued
  // operations up to this one itself when the group's thread has not
  // started them (OpState::help): no hop.
  using State = troupe::detail::State<void>;
  State* s = spec_.memory == Memory::host ? new OpState(weak_from_this(), id) : new State(1);
  return std::make_shared<Promise<void>>(troupe::detail::StatePtr<State>(s));
}

Group::DoneFn Group::complete_with(std::shared_ptr<Promise<void>> p) {
  return [p = std::move(p)](std::exception_ptr e) {
    if (e)
      p->set_error(e);
    else
      p->set_value();
  };
}

Ref<void> Group::submit(OpFn op, FastOp fast) {
  const auto id = next_id_.fetch_add(1, std::memory_order_relaxed);
  if (fast.kind != k_none && spec_.memory == Memory::host) {
    Ref<void> done;
    if (try_inline(fast, id, done)) return done;
  }
  op = ordered(std::move(op));
  auto p = promise_for(id);
  auto ref = p->ref();
  enqueue(std::move(op), complete_with(std::move(p)), id);
  return ref;
}

void Group::enqueue(OpFn op, DoneFn done, std::uint64_t id) {
  {
    std::lock_guard lock(mu_);
    if (!closing_) {
      queue_.push_back({std::move(op), std::move(done), id ? id : next_id_.fetch_add(1, std::memory_order_relaxed), nullptr});
      has_work_.store(true, std::memory_order_release);
      wake_locked();
      return;
    }
  }
  done(std::make_exception_ptr(CollectiveError(fmt::format("group '{}' was destroyed", spec_.name))));
}

void Group::wake_locked() {
  cv_.notify_one();
  if (shm_) shm_->bell_ring_self();  // the thread may sleep on the doorbell, not on cv_
}

Ref<void> Group::fail_now(std::string why) {
  return Ref<void>::from_error(std::make_exception_ptr(UsageError(fmt::format("group '{}': {}", spec_.name, why))));
}

telemetry::GroupSample Group::sample() const {
  telemetry::GroupSample s;
  s.name = spec_.name;
  s.uid = spec_.uid;
  s.rank = spec_.rank;
  s.world = spec_.world;
  s.ops = ops_.load(std::memory_order_relaxed);
  s.bytes = bytes_.load(std::memory_order_relaxed);
  s.busy_s = static_cast<double>(busy_ns_.load(std::memory_order_relaxed)) * 1e-9;
  std::lock_guard lock(mu_);  // shm_ is set on the group's thread, under mu_
  s.last = shm_ ? shm_->times_last() : 0;
  return s;
}

Ref<void> Group::barrier() {
  count(0);
  FastOp f;
  f.kind = k_barrier;
  const auto t0 = trace_t0();
  return traced(submit([](Backend& g) { g.barrier(); }, f), "barrier", 0, t0);
}

Ref<void> Group::traced(Ref<void> r, const char* what, std::size_t bytes, std::int64_t t0) {
  if (!t0 || !trace::on()) return r;
  const auto track = trace::group_track(spec_.name, spec_.rank);
  const auto session = trace::session();
  if (traced_session_.exchange(session, std::memory_order_relaxed) != session)
    trace::name_track(track, fmt::format("group {} rank {} ({})", spec_.name, spec_.rank, to_string(spec_.backend)));
  r.state()->on_ready([track, what, bytes, t0]() {
    trace::span(trace::Kind::collective, what, t0, trace::now_ns(), static_cast<std::int64_t>(bytes), track);
  });
  return r;
}

void Group::abort(const std::string& why) {
  std::lock_guard lock(mu_);
  if (shm_) {
    shm_->abort(static_cast<std::int32_t>(spec_.rank), why);
  } else {
    pending_abort_ = why;
    cancel_ = true;
  }
}

void Group::destroy() {
  {
    std::lock_guard lock(mu_);
    if (closing_ && !thread_.joinable()) return;
    if (!closing_) {
      closing_ = true;
      has_work_ = true;
      const std::string why = fmt::format("rank {} destroyed the group", spec_.rank);
      if (shm_) {
        shm_->abort(static_cast<std::int32_t>(spec_.rank), why);
      } else {
        pending_abort_ = why;
        cancel_ = true;
      }
    }
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  // Operations still queued fail: the group is gone.
  std::deque<Entry> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
  }
  for (auto& e : left)
    e.done(std::make_exception_ptr(CollectiveError(fmt::format("group '{}' was destroyed", spec_.name))));
}

}  // namespace troupe::coll
