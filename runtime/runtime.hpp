#pragma once
// Runtime: the thread pool, and the actors it hosts.
//
//   troupe::Runtime rt;                                   // hardware threads
//   auto c = rt.spawn<Counter>(10, troupe::Options{}.name("c"));
//   int v = c.call(&Counter::add, 5).get();
//
// Lifetime: destroying (or shutdown()) a runtime kills every live actor with
// DeathCause::runtime_shutdown, fails their queued calls and joins the pool,
// within RuntimeOptions::shutdown_timeout: an actor still inside a method
// then is named on stderr and its thread left to finish (see shutdown()).
//
// The pool grows while its threads block in get() (runtime/detail/executor.hpp),
// so actors waiting on other actors never starve the calls they wait for.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "runtime/actor_ref.hpp"
#include "runtime/detail/actor_registry.hpp"
#include "runtime/detail/process.hpp"
#include "runtime/detail/process_role.hpp"
#include "runtime/detail/type_name.hpp"
#include "runtime/mesh.hpp"
#include "runtime/task.hpp"

namespace troupe {

struct RuntimeOptions {
  /// Pool threads; 0 means std::thread::hardware_concurrency().
  unsigned threads = 0;
  /// How long an idle pool thread polls before sleeping (one at a time).
  /// Worker processes use 0: their driver already spins, and two processes
  /// spinning on a small machine slow each other's socket wake-ups.
  unsigned spin_us = 50;
  /// The cluster process actors are placed on: "host:port" of a running head
  /// (troupe-daemon --head). Empty: what troupe::init chose (--address or
  /// $TROUPE_ADDRESS), else an embedded head and node inside this process,
  /// started with the first process actor.
  std::string address{};
  /// The cluster token for `address` (empty: $TROUPE_TOKEN, else the token file).
  std::string token{};
  /// How long shutdown() waits for actors to finish the call they are in
  /// (after the first half, the waits they are blocked in are broken).
  std::chrono::milliseconds shutdown_timeout{10000};
  /// The most pool threads there will ever be, counting those started for
  /// threads blocked in get() (0: 64 more than `threads`).
  unsigned max_threads = 0;
  /// Count each actor's calls, queue and sampled latencies (`troupe top`,
  /// Runtime::actor_samples). Off: none of it (troupe-bench observe
  /// measures what it costs).
  bool observe = true;
};

namespace detail {
class Executor;
class ActorTable;

template <class... Args>
struct last_is_options : std::false_type {};
template <class A>
struct last_is_options<A> : std::is_same<std::decay_t<A>, Options> {};
template <class A, class B, class... Rest>
struct last_is_options<A, B, Rest...> : last_is_options<B, Rest...> {};

template <class T>
class TaskRunner final : public State<T>, public TaskSink {
 public:
  TaskRunner() : State<T>(2) {}
  void task_done(std::coroutine_handle<> h) noexcept override {
    auto typed = std::coroutine_handle<TaskPromise<T>>::from_address(h.address());
    auto& p = typed.promise();
    if (p.error)
      this->set_error(p.error);
    else if constexpr (std::is_void_v<T>)
      this->set_value();
    else
      this->set_value(std::move(*p.value));
    typed.destroy();
    this->release();
  }
};

}  // namespace detail

class Runtime {
 public:
  explicit Runtime(RuntimeOptions opts = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Kills every live actor (runtime_shutdown), then joins the pool. Idempotent.
  /// Must not be called from inside an actor. Bounded by
  /// RuntimeOptions::shutdown_timeout: an actor still inside a method by then
  /// (a loop that never returns, a wait on a Promise nobody keeps) is named
  /// on stderr, with what it waits for, and its thread is left to finish.
  void shutdown();

  /// The pool's size: threads kept runnable (more start while some block).
  unsigned threads() const noexcept;

  /// The cluster process actors go to: "host:port" of a running head, or ""
  /// for the embedded one (this machine). Starts nothing.
  std::string cluster_address() const;
  /// RuntimeOptions::token (the process side reads it).
  const std::string& cluster_token() const noexcept { return token_; }
  /// The process-actor side of this runtime (runtime/remote/), made on first
  /// use; UsageError if troupe::init has not run.
  detail::RuntimeExtension& extension();
  /// Reserves resources for a group of bundles on the cluster's nodes. Throws
  /// Infeasible (naming what is short where) if the strategy cannot be met now.
  PlacementGroup placement_group(std::vector<Resources> bundles, Strategy strategy = Strategy::pack,
                                 std::string name = {});
  /// Frees a placement group; its actors are killed.
  void remove_placement_group(const PlacementGroup& pg);
  /// Tells the cluster head how a training job goes (`troupe jobs`, `troupe
  /// top`, /metrics): the trainers call it after every chunk; a custom loop
  /// may too, with an id from next_job_id(). Never blocks on the network and
  /// never throws: without troupe::init, a cluster link or an address to
  /// join (RuntimeOptions::address, $TROUPE_ADDRESS), the report is dropped.
  void report_job(const telemetry::JobStatus& job) noexcept;
  /// The same for a collective group (coll::create_group reports its own).
  void report_group(const telemetry::GroupStatus& group) noexcept;
  std::uint64_t next_job_id() noexcept { return ++jobs_; }
  /// For the runtime's own parts: the pool (runtime/detail/executor.hpp).
  detail::Executor& executor() const noexcept { return *exec_; }
  detail::PoolHandle* pool_handle() const noexcept { return pool_handle_; }
  std::size_t live_actors() const;
  bool observing() const noexcept { return observe_; }
  /// Each live in-process actor's counters: calls run, messages waiting,
  /// sampled latencies (`troupe top`; a worker sends its actor's to its driver).
  std::vector<telemetry::ActorSample> actor_samples() const;

  /// Spawns a T built from `args` (the last argument may be an Options).
  /// Returns at once; the constructor and on_start run on the actor's strand.
  template <class T, class... Args>
  ActorRef<T> spawn(Args&&... args);

  /// Spawns n actors of class T, ranks 0..n-1, each built from `args`; an
  /// Options name "w" names them "w/0", "w/1", ...
  template <class T, class... Args>
  Mesh<T> spawn_mesh(std::size_t n, Args&&... args);

  /// The live actor called `name`; ActorNotFound if none (or not a T).
  template <class T>
  ActorRef<T> get_actor(const std::string& name) const {
    auto cell = std::dynamic_pointer_cast<detail::Cell<T>>(find_cell(name));
    if (!cell)
      throw ActorNotFound(fmt::format("actor '{}' is not a {}", name, detail::type_name<T>()));
    return ActorRef<T>(std::move(cell));
  }
  template <class T>
  std::optional<ActorRef<T>> find_actor(const std::string& name) const {
    try {
      return get_actor<T>(name);
    } catch (const ActorNotFound&) {
      return std::nullopt;
    }
  }

  /// Calls `fn` (on the pool) each time `actor` dies, with the cause and
  /// whether it is restarting; at once if it is already dead for good.
  template <class T>
  void monitor(const ActorRef<T>& actor, MonitorFn fn) {
    if (!actor.valid()) throw UsageError("monitor of an empty ActorRef");
    if (actor.remote())
      actor.remote()->add_monitor(std::move(fn));
    else
      actor.cell()->add_monitor(std::move(fn));
  }

  /// Runs a driver coroutine on the pool; its Ref gives the result.
  template <class T>
  Ref<T> start(Task<T> task) {
    if (!task.valid()) throw UsageError("Runtime::start of an empty Task");
    auto* runner = new detail::TaskRunner<T>();
    runner->set_context(pool_handle_);
    Ref<T> ref{detail::StatePtr<detail::State<T>>(runner)};
    auto h = task.release();
    h.promise().scheduler = pool_handle_;
    h.promise().sink = runner;
    pool_handle_->schedule(h);
    return ref;
  }
  /// start(task).get(): for a driver's main().
  template <class T>
  T block_on(Task<T> task) {
    return start(std::move(task)).get();
  }

 private:
  void adopt(const std::shared_ptr<detail::CellBase>& cell);
  std::shared_ptr<detail::CellBase> find_cell(const std::string& name) const;

  template <class T, class... Stored, class Tuple, std::size_t... I>
  ActorRef<T> spawn_process(Options opts, Tuple&& args, std::index_sequence<I...>);

  template <class T, class Tuple, std::size_t... I>
  ActorRef<T> spawn_from(Options opts, Tuple&& args, std::index_sequence<I...>);

  std::shared_ptr<detail::Executor> exec_;
  detail::PoolHandle* pool_handle_;
  // Live actors by id and name: shared with the cells, which leave it as they
  // die (a cell left running past shutdown still finds it).
  std::shared_ptr<detail::ActorTable> table_;
  std::atomic<bool> shut_{false};
  std::chrono::milliseconds shutdown_timeout_;
  std::string address_, token_;
  std::mutex ext_mu_;
  std::unique_ptr<detail::RuntimeExtension> ext_;
  std::atomic<std::uint64_t> jobs_{0};
  bool observe_ = true;
};

template <class T, class Tuple, std::size_t... I>
ActorRef<T> Runtime::spawn_from(Options opts, Tuple&& args, std::index_sequence<I...>) {
  using Stored = std::tuple<std::decay_t<std::tuple_element_t<I, std::decay_t<Tuple>>>...>;
  if (opts.process_)
    return spawn_process<T, std::decay_t<std::tuple_element_t<I, std::decay_t<Tuple>>>...>(
        std::move(opts), std::forward<Tuple>(args), std::index_sequence<I...>{});
  typename detail::Cell<T>::Factory factory =
      [stored = Stored(std::get<I>(std::forward<Tuple>(args))...)]() {
        return std::apply([](const auto&... a) { return std::make_shared<T>(a...); }, stored);
      };
  auto cell =
      std::make_shared<detail::Cell<T>>(*this, table_, std::move(opts), detail::type_name<T>(), std::move(factory));
  adopt(cell);
  cell->start();
  return ActorRef<T>(std::move(cell));
}

template <class T, class... Args>
ActorRef<T> Runtime::spawn(Args&&... args) {
  auto all = std::forward_as_tuple(std::forward<Args>(args)...);
  if constexpr (detail::last_is_options<Args...>::value) {
    Options opts = std::get<sizeof...(Args) - 1>(all);
    return spawn_from<T>(std::move(opts), std::move(all), std::make_index_sequence<sizeof...(Args) - 1>{});
  } else {
    return spawn_from<T>(Options{}, std::move(all), std::make_index_sequence<sizeof...(Args)>{});
  }
}

template <class T, class... Args>
Mesh<T> Runtime::spawn_mesh(std::size_t n, Args&&... args) {
  if (n == 0) throw UsageError("spawn_mesh: a mesh needs at least one actor");
  auto all = std::forward_as_tuple(args...);
  Options base;
  constexpr bool has_opts = detail::last_is_options<Args...>::value;
  if constexpr (has_opts) base = std::get<sizeof...(Args) - 1>(all);
  constexpr std::size_t nargs = has_opts ? sizeof...(Args) - 1 : sizeof...(Args);
  std::vector<ActorRef<T>> members;
  members.reserve(n);
  try {
    for (std::size_t r = 0; r < n; ++r) {
      Options o = base;
      o.rank_ = r;
      o.mesh_size_ = n;
      if (!base.name_.empty()) o.name_ = fmt::format("{}/{}", base.name_, r);
      members.push_back(spawn_from<T>(std::move(o), all, std::make_index_sequence<nargs>{}));
    }
  } catch (...) {
    for (auto& m : members) m.kill();  // all or nothing
    throw;
  }
  return Mesh<T>(std::move(members));
}

template <class T, class... Stored, class Tuple, std::size_t... I>
ActorRef<T> Runtime::spawn_process(Options opts, Tuple&& args, std::index_sequence<I...>) {
  if constexpr (!detail::encodable_v<Stored...>) {
    throw UsageError(fmt::format("the constructor arguments of {} cannot be sent to a worker process (no codec)",
                                 detail::type_name<T>()));
  } else {
    if (opts.gpus_ > 0 && opts.device_ >= 0 && opts.gpus_ > 1)
      throw UsageError(fmt::format("{}: an explicit device() goes with at most one GPU", detail::type_name<T>()));
    detail::require_init(fmt::format("spawning {} as a process actor", detail::type_name<T>()));
    if (!detail::registry().registered(typeid(T)))
      throw UsageError(fmt::format("{} is not registered with TROUPE_ACTOR(...); process actors need it",
                                   detail::type_name<T>()));
    Bytes ctor = codec::to_bytes(std::tuple<Stored...>(std::get<I>(std::forward<Tuple>(args))...));
    const std::string& key = detail::FactoryRegistrar<T, Stored...>::key;
    return ActorRef<T>(extension().spawn(key, std::move(ctor), std::move(opts), detail::type_name<T>()));
  }
}

}  // namespace troupe

// TROUPE_ACTOR and the factories spawn<T> names for process actors.
#include "runtime/actor.hpp"
