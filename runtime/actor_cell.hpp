#pragma once
// The runtime side of one actor: mailbox, strand, lifecycle and supervision.
//
// Everything that touches the actor's instance runs on its strand. Calls from
// any thread go through the lock-free inbox; the drain loop runs them in order.
// Lifetime: a cell is owned by the runtime while alive and by ActorRefs and
// in-flight work after that; a dead cell refuses every call with ActorDied.
#include <array>
#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/telemetry.hpp"
#include "runtime/context.hpp"
#include "runtime/detail/mailbox.hpp"
#include "runtime/detail/pool.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/errors.hpp"
#include "runtime/monitor.hpp"
#include "runtime/options.hpp"

namespace troupe {

namespace detail {

class ActorTable;
struct StrandBox;  // the cell's Asio strand (runtime/detail/strand.hpp)

class CellBase : public ActorContext, public Scheduler, public std::enable_shared_from_this<CellBase> {
 public:
  /// The cell runs on `rt`'s pool, on a strand of its own (which shares the
  /// pool's io_context, so it never outlives it, even when an ActorRef
  /// outlives the Runtime); it leaves `table` when it dies.
  CellBase(Runtime& rt, std::shared_ptr<ActorTable> table, Options opts, const char* type_name);
  ~CellBase() override;

  // ActorContext
  std::uint64_t id() const noexcept override { return id_; }
  const std::string& name() const noexcept override { return opts_.name_; }
  std::size_t rank() const noexcept override { return opts_.rank_; }
  std::size_t mesh_size() const noexcept override { return opts_.mesh_size_; }
  Runtime& runtime() const noexcept override { return rt_; }
  int restarts() const noexcept override { return restarts_; }
  bool reentrant() const noexcept override { return opts_.reentrant_; }

  // Scheduler: resume a suspended Task on this actor's strand.
  void schedule(std::coroutine_handle<> h) override;

  const char* type_name() const noexcept { return type_name_; }
  PoolHandle* pool() const noexcept { return pool_; }
  /// The cell's strand (runtime/detail/strand.hpp has its type).
  StrandBox& strand_box() const noexcept { return *strand_; }
  /// Calls run, messages waiting, and how long sampled calls took from
  /// queueing to their end (any thread; `troupe top`'s actor pane).
  telemetry::ActorSample stats() const noexcept;
  /// Its steps so far (troupe::note_step; any thread).
  telemetry::StepProgress progress() const noexcept;
  /// Strand: troupe::note_step from one of its methods.
  void note_step(std::int64_t step, double compute_s, double wait_s) noexcept;
  bool alive() const noexcept { return !death_claimed_.load(std::memory_order_acquire); }
  /// Dead, with its cause and detail written (died_error() may read them).
  bool dead() const noexcept { return dead_.load(std::memory_order_acquire); }
  bool retries_enabled() const noexcept { return opts_.max_call_retries_ != 0; }

  /// Any thread: queues `m` (the cell takes the caller's reference) or fails it
  /// with ActorDied if the actor is dead.
  void enqueue(Message* m) noexcept;
  /// Any thread: kills the actor now; queued calls fail with ActorDied(killed).
  void kill();
  /// Any thread: the ActorDied error for this (dead) actor.
  std::exception_ptr died_error() const;
  /// Any thread: registers a death callback (runs at once if already dead).
  void add_monitor(MonitorFn fn);
  /// Strand: starts the first incarnation (called once by spawn).
  void start();
  /// Posts death with `cause` to the strand (used at runtime shutdown).
  void post_death(DeathCause cause, std::function<void()> done);

  // Strand-only hooks used by messages.
  /// A suspended call finished; `failure` is an ActorFailure it raised, if any.
  void call_finished(Message* m, std::exception_ptr failure) noexcept;
  /// A suspended call is about to give its result: its trace span ends now
  /// (before the caller can see the result and take the trace).
  void trace_finished(Message* m) noexcept {
    if (m->trace_t0) trace_run(m->trace_name, m->trace_flow, std::exchange(m->trace_t0, 0));
  }
  /// A stop request reached the head of the mailbox.
  void stop_now() noexcept;
  /// A Ref argument of the head message resolved.
  void wake() noexcept;

 protected:
  /// Constructs the user's object (throws on failure).
  virtual void create_instance() = 0;
  virtual void run_on_start() = 0;
  virtual void run_on_stop() noexcept = 0;
  virtual void drop_instance() noexcept = 0;

 private:
  void post_drain();
  void drain() noexcept;
  // `troupe trace`: the run of a call that began at t0 (steady ns).
  void trace_run(const char* name, std::uint64_t flow, std::int64_t t0);
  bool start_instance() noexcept;
  void handle_failure(Message* culprit, std::exception_ptr e) noexcept;
  bool claim_death(DeathCause cause, std::string detail) noexcept;
  void finish_death() noexcept;
  void notify(const DownEvent& ev);
  void deliver(std::vector<MonitorFn> fns, DownEvent ev);

  Runtime& rt_;
  bool observe_;  // the runtime's RuntimeOptions::observe
  std::shared_ptr<ActorTable> table_;
  PoolHandle* pool_;
  std::unique_ptr<StrandBox> strand_;
  const std::uint64_t id_;
  const Options opts_;
  const char* type_name_;

  Inbox inbox_;
  // strand-only state
  MessageQueue pending_;
  // Watching (stats()): written on the strand only, read by anyone.
  std::atomic<std::uint64_t> calls_{0};
  std::array<std::atomic<std::uint64_t>, telemetry::kLatencyBuckets> latency_{};
  // note_step's counters, under a spin flag held for a few stores (a step
  // writes them once; a reader looks 20 times a second): never two steps mixed.
  mutable std::atomic<bool> progress_busy_{false};
  telemetry::StepProgress progress_;
  std::vector<Message*> suspended_;
  std::uint64_t traced_session_ = 0;  // the trace session its track was named in (strand only)
  bool busy_ = false;      // a non-reentrant coroutine or an unresolved Ref argument holds the mailbox
  bool has_instance_ = false;
  bool finished_ = false;  // finish_death ran
  int restarts_ = 0;

  std::atomic<bool> death_claimed_{false};
  std::atomic<bool> dead_{false};  // set after cause_/detail_ are written
  DeathCause cause_ = DeathCause::stopped;  // written once before the inbox closes
  std::string detail_;

  std::mutex monitors_mu_;
  std::vector<MonitorFn> monitors_;
  bool down_ = false;  // final DownEvent sent (guarded by monitors_mu_)
};

bool is_actor_failure(const std::exception_ptr& e) noexcept;

}  // namespace detail
}  // namespace troupe
