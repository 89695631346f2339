#include "runtime/actor_cell.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include "runtime/detail/actor_table.hpp"
#include "runtime/detail/call.hpp"
#include "runtime/detail/executor.hpp"
#include "runtime/detail/registry.hpp"
#include "runtime/detail/strand.hpp"
#include "runtime/runtime.hpp"
#include "runtime/trace.hpp"

namespace troupe::detail {

namespace {
// Messages run per turn before the drain yields the thread to other actors.
constexpr int kDrainBudget = 256;
}  // namespace

bool is_actor_failure(const std::exception_ptr& e) noexcept {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const ActorFailure&) {
    return true;
  } catch (...) {
    return false;
  }
}

StopMessage::StopMessage() : State<void>(2) {}
StopMessage::~StopMessage() = default;
Message::Step StopMessage::run(CellBase& cell) {
  cell.stop_now();
  set_value();
  release();
  return Step::done;
}
void StopMessage::fail(std::exception_ptr) noexcept {
  set_value();
  release();
}
void StopMessage::abandon(std::exception_ptr) noexcept {}
void StopMessage::done() noexcept { release(); }

void Message::on_dep_ready(std::shared_ptr<CellBase> cell) noexcept { cell->wake(); }

CellBase::CellBase(Runtime& rt, std::shared_ptr<ActorTable> table, Options opts, const char* type_name)
    : rt_(rt),
      observe_(opts.observe_ < 0 ? rt.observing() : opts.observe_ != 0),
      table_(std::move(table)),
      pool_(rt.pool_handle()),
      strand_(std::make_unique<StrandBox>(rt.executor().io_shared())),
      id_(take_actor_id(opts.id_)),
      opts_(std::move(opts)),
      type_name_(type_name) {
  register_label(id_, make_label(id_, opts_.name_, type_name_));
}

// Whatever the cell still owns when its last owner lets go (only possible once
// it is dead and its final drain never ran) fails now: no caller is left hanging.
CellBase::~CellBase() {
  if (!death_claimed_.load()) {
    cause_ = DeathCause::runtime_shutdown;
  }
  auto err = died_error();
  while (!pending_.empty()) pending_.pop()->fail(err);
  bool was_blocked = false;
  for (Message* m = inbox_.close(was_blocked); m;) {
    Message* next = m->next;
    m->fail(err);
    m = next;
  }
  unregister_label(id_);
}

// Handlers posted to the strand hold the cell weakly: a cell must not keep its
// io_context alive through a handler that io_context will never run (a cycle
// that would leak both after shutdown). Live cells are owned by the runtime,
// suspended calls own theirs, so a failed lock means there is nothing to do.
//
// The caller (a collective group's thread, a Ref completed anywhere) owns
// nothing of this cell: once the post is queued, a pool thread may resume `h`,
// finish the call and drop the cell, and the Runtime may then destroy the
// io_context while this thread is still inside post (signalling the pool's
// condition variable, releasing its strand copy). This thread holds the
// io_context and the strand, not the cell, until post returns: were it the
// cell's last owner, the actor would be destroyed here, on a thread the actor
// may own (a collective group joining its own thread).
void CellBase::schedule(std::coroutine_handle<> h) {
  std::shared_ptr<boost::asio::io_context> io = strand_->io;
  Strand strand = strand_->strand;
  boost::asio::post(strand, [weak = weak_from_this(), h]() {
    if (auto self = weak.lock()) {
      ContextGuard guard(self.get());
      h.resume();
    }
  });
}

void CellBase::post_drain() {
  boost::asio::post(strand_->strand, [weak = weak_from_this()]() {
    if (auto self = weak.lock()) self->drain();
  });
}

void CellBase::start() { post_drain(); }

namespace {
std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
// Strand-only counters: a plain add, published for readers on other threads.
inline void bump(std::atomic<std::uint64_t>& a) noexcept {
  a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}
}  // namespace

telemetry::ActorSample CellBase::stats() const noexcept {
  telemetry::ActorSample s;
  s.id = id_;
  s.calls = calls_.load(std::memory_order_relaxed);
  // Queued but not started, estimated: each calling thread counts its calls
  // 8 at a time (a retried call runs twice: never below zero).
  const std::uint64_t pushed = inbox_.pushed() * 8;
  s.depth = pushed > s.calls ? static_cast<std::uint32_t>(std::min<std::uint64_t>(pushed - s.calls, UINT32_MAX)) : 0;
  s.latency.resize(latency_.size());
  for (std::size_t b = 0; b < latency_.size(); ++b) s.latency[b] = latency_[b].load(std::memory_order_relaxed);
  s.progress = progress();
  return s;
}

namespace {
// Holds a one-byte spin flag for a few loads or stores.
class SpinHold {
 public:
  explicit SpinHold(std::atomic<bool>& f) noexcept : f_(f) {
    // A holder that lost its core would be spun on for a whole time slice.
    for (unsigned spins = 0; f_.exchange(true, std::memory_order_acquire); ++spins)
      if (spins >= 64) std::this_thread::yield();
  }
  ~SpinHold() { f_.store(false, std::memory_order_release); }
  SpinHold(const SpinHold&) = delete;
  SpinHold& operator=(const SpinHold&) = delete;

 private:
  std::atomic<bool>& f_;
};
}  // namespace

telemetry::StepProgress CellBase::progress() const noexcept {
  SpinHold hold(progress_busy_);
  return progress_;
}

void CellBase::note_step(std::int64_t step, double compute_s, double wait_s) noexcept {
  SpinHold hold(progress_busy_);
  progress_.step = step;
  ++progress_.steps;
  progress_.compute_s += std::max(0.0, compute_s);
  progress_.wait_s += std::max(0.0, wait_s);
}

void CellBase::enqueue(Message* m) noexcept {
  // One call in 8 carries its queueing time and counts for 8 queued (a
  // thread's own count: no shared write for the other 7; a locked add on
  // every call would cost async calls some 10%).
  thread_local std::uint32_t sample = 0;
  const bool sampled = observe_ && (++sample & 7) == 0;
  if (sampled) m->queued_ns = now_ns();
  switch (inbox_.push(m, sampled)) {
    case PushResult::queued: return;
    case PushResult::queued_must_schedule: post_drain(); return;
    case PushResult::closed: m->fail(died_error()); return;
  }
}

std::exception_ptr CellBase::died_error() const {
  return std::make_exception_ptr(ActorDied(id_, opts_.name_, cause_, detail_, RestartInfo{0, opts_.max_restarts_}));
}

void CellBase::wake() noexcept {
  boost::asio::post(strand_->strand, [weak = weak_from_this()]() {
    if (auto self = weak.lock()) {
      self->busy_ = false;
      self->drain();
    }
  });
}

bool CellBase::start_instance() noexcept {
  try {
    create_instance();
    has_instance_ = true;
    run_on_start();
    return true;
  } catch (...) {
    handle_failure(nullptr, std::current_exception());
    return false;
  }
}

void CellBase::drain() noexcept {
  ContextGuard guard(this);
  for (int budget = kDrainBudget; budget > 0; --budget) {
    if (dead_.load(std::memory_order_acquire)) {
      finish_death();
      return;
    }
    if (busy_) return;
    if (!has_instance_) {
      if (!start_instance()) continue;
    }
    if (pending_.empty()) {
      bool closed = false;
      Message* list = inbox_.take_all(closed);
      if (!list) {
        if (closed) continue;  // death was claimed concurrently
        if (inbox_.try_block()) return;
        continue;
      }
      pending_.append(list);
    }
    Message* m = pending_.front();
    if (!m->deps_ready()) {
      busy_ = true;
      m->on_dep_ready(shared_from_this());
      return;
    }
    pending_.pop();
    ++m->attempts;
    const std::int64_t queued = m->queued_ns;  // m may be gone once it ran
    if (observe_) bump(calls_);
    // A call is traced where its send was (trace::send sampled it in).
    const std::uint64_t flow = m->trace_flow;  // m may be gone once it ran
    const bool traced = flow != 0 && trace::on();
    const char* traced_as = m->trace_name;
    const std::int64_t t0 = traced ? trace::now_ns() : 0;
    try {
      const auto step = m->run(*this);
      if (queued) bump(latency_[telemetry::latency_bucket(now_ns() - queued)]);
      if (traced) {
        if (step == Message::Step::suspended)
          m->trace_t0 = t0;  // a coroutine: its span ends when it does (call_finished)
        else
          trace_run(traced_as, flow, t0);
      }
      if (step == Message::Step::suspended) {
        suspended_.push_back(m);
        if (!opts_.reentrant_) {
          busy_ = true;
          return;
        }
      }
    } catch (...) {
      handle_failure(m, std::current_exception());
    }
  }
  post_drain();  // budget spent: let other actors have the thread, then go on
}

void CellBase::trace_run(const char* name, std::uint64_t flow, std::int64_t t0) {
  if (!trace::on()) return;
  if (traced_session_ != trace::session()) {  // its track's name, once a session
    traced_session_ = trace::session();
    trace::name_track(id_, make_label(id_, opts_.name_, type_name_));
  }
  trace::span(trace::Kind::call, name ? name : "call", t0, trace::now_ns(), -1, id_, flow);
}

void CellBase::call_finished(Message* m, std::exception_ptr failure) noexcept {
  std::erase(suspended_, m);
  trace_finished(m);
  if (!failure)
    m->done();
  else if (!finished_)
    handle_failure(m, std::move(failure));
  else
    m->fail(died_error());
  if (!opts_.reentrant_) busy_ = false;
  if (!finished_) post_drain();
}

void CellBase::handle_failure(Message* culprit, std::exception_ptr e) noexcept {
  std::string why = what_of(e);
  if (!culprit && !is_actor_failure(e)) why = fmt::format("constructor or on_start threw: {}", why);
  has_instance_ = false;
  drop_instance();
  const bool restarting = (opts_.max_restarts_ < 0 || restarts_ < opts_.max_restarts_) && alive();
  if (!restarting) {
    const bool claimed = claim_death(DeathCause::failed, why);
    // The culprit is marked as such (a worker process tells its driver which
    // call failed the actor, so that call is not retried on a new worker).
    if (culprit)
      culprit->fail(std::make_exception_ptr(
          ActorDied(id_, opts_.name_, DeathCause::failed, why, RestartInfo{0, opts_.max_restarts_, true})));
    if (claimed) finish_death();
    return;
  }
  notify(DownEvent{id_, opts_.name_, DeathCause::failed, why, true, restarts_});
  ++restarts_;
  // Calls in flight: re-delivered if the policy allows, failed otherwise. The
  // call that raised the failure is never re-delivered: it declared this
  // incarnation broken, and would only do so again, spending a restart each
  // time. Its caller learns that the actor was restarted, not that it is dead.
  const RestartInfo restart{restarts_, opts_.max_restarts_, false};
  auto err = std::make_exception_ptr(ActorDied(id_, opts_.name_, DeathCause::failed, why, restart));
  // A call is retried while its runs so far stay within max_call_retries + 1.
  auto retry_ok = [&](Message* m) {
    if (m->control()) return true;
    if (opts_.max_call_retries_ == 0 || !m->retryable()) return false;
    return opts_.max_call_retries_ < 0 || m->attempts <= opts_.max_call_retries_;
  };
  bool closed = false;
  pending_.append(inbox_.take_all(closed));
  MessageQueue keep;
  if (culprit) {
    if (culprit->control())
      keep.append(culprit);
    else
      culprit->fail(std::make_exception_ptr(
          ActorDied(id_, opts_.name_, DeathCause::failed, why, RestartInfo{restarts_, opts_.max_restarts_, true})));
  }
  while (!pending_.empty()) {
    Message* m = pending_.pop();
    if (retry_ok(m))
      keep.append(m);
    else
      m->fail(err);
  }
  pending_ = keep;
  busy_ = false;
  // The drain loop re-creates the instance before the next message.
}

bool CellBase::claim_death(DeathCause cause, std::string detail) noexcept {
  if (death_claimed_.exchange(true, std::memory_order_acq_rel)) return false;
  cause_ = cause;
  detail_ = std::move(detail);
  dead_.store(true, std::memory_order_release);
  table_->forget(*this);  // the name is free from this moment
  bool was_blocked = false;
  Message* list = inbox_.close(was_blocked);  // publishes cause_/detail_ to refused senders
  auto err = died_error();
  while (list) {
    Message* next = list->next;
    list->fail(err);
    list = next;
  }
  return true;
}

void CellBase::kill() {
  if (claim_death(DeathCause::killed, {})) post_drain();
}

void CellBase::stop_now() noexcept {
  if (has_instance_) {
    ContextGuard guard(this);
    run_on_stop();
  }
  if (claim_death(DeathCause::stopped, {})) finish_death();
}

void CellBase::post_death(DeathCause cause, std::function<void()> done) {
  boost::asio::post(strand_->strand, [self = shared_from_this(), cause, done = std::move(done)]() {
    if (self->claim_death(cause, {})) self->finish_death();
    done();
  });
}

void CellBase::finish_death() noexcept {
  if (finished_) return;
  finished_ = true;
  auto err = died_error();
  while (!pending_.empty()) pending_.pop()->fail(err);
  // Suspended coroutine calls keep their frame (and the instance) until they
  // resume; their callers learn of the death now.
  for (Message* m : suspended_) m->abandon(err);
  if (has_instance_) {
    has_instance_ = false;
    drop_instance();
  }
  busy_ = false;
  DownEvent ev{id_, opts_.name_, cause_, detail_, false, restarts_};
  std::vector<MonitorFn> fns;
  {
    std::lock_guard lock(monitors_mu_);
    down_ = true;
    fns.swap(monitors_);
  }
  deliver(std::move(fns), std::move(ev));
}

void CellBase::add_monitor(MonitorFn fn) {
  {
    std::lock_guard lock(monitors_mu_);
    if (!down_) {
      monitors_.push_back(std::move(fn));
      return;
    }
  }
  deliver({std::move(fn)}, DownEvent{id_, opts_.name_, cause_, detail_, false, restarts_});
}

void CellBase::notify(const DownEvent& ev) {
  std::vector<MonitorFn> fns;
  {
    std::lock_guard lock(monitors_mu_);
    fns = monitors_;
  }
  deliver(std::move(fns), ev);
}

// Down events of one actor reach its monitors in order: they go through the
// actor's strand (holding the cell, so the last one is not lost with it).
void CellBase::deliver(std::vector<MonitorFn> fns, DownEvent ev) {
  if (fns.empty()) return;
  auto run = [self = shared_from_this(), fns = std::move(fns), ev = std::move(ev)]() {
    for (auto& fn : fns) fn(ev);
  };
  // On the strand while the pool lives; right here once it is gone.
  if (!pool_->with_io([&](boost::asio::io_context&) { boost::asio::post(strand_->strand, std::move(run)); })) run();
}

}  // namespace troupe::detail

namespace troupe {
void note_step(std::int64_t step, double compute_s, double wait_s) noexcept {
  if (auto* cell = dynamic_cast<detail::CellBase*>(current_actor())) cell->note_step(step, compute_s, wait_s);
}
}  // namespace troupe
