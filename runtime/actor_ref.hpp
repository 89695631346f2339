#pragma once
// ActorRef<T>: a typed handle to an actor; calls through it never block.
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "runtime/context.hpp"
#include "runtime/detail/call.hpp"
#include "runtime/detail/call_check.hpp"
#include "runtime/detail/process.hpp"
#include "runtime/detail/type_name.hpp"
#include "runtime/errors.hpp"
#include "runtime/trace.hpp"

namespace troupe {

namespace detail {
template <class T, class M, class... A>
Ref<call_result_t<M>> submit_call(ProcessActor& ra, M m, A&&... a);
template <class T, class M>
const char* traced_name(M m);
/// While `troupe trace` records: a call that a worker makes for its driver
/// takes the driver's flow (trace::inbound_flow); any other starts one here
/// unless its thread samples it out (checked inline, before this is called:
/// `trace::inbound_flow() || trace::sample()`).
template <class T, class M>
[[gnu::noinline]] void trace_call(Message& m, M method) {
  m.trace_name = traced_name<T>(method);
  const std::uint64_t inbound = std::exchange(trace::inbound_flow(), 0);
  m.trace_flow = inbound ? inbound : trace::send(m.trace_name);
}
}  // namespace detail

template <class T>
class ActorRef {
 public:
  ActorRef() noexcept = default;
  explicit ActorRef(std::shared_ptr<detail::Cell<T>> cell) noexcept : cell_(std::move(cell)) {}
  /// A handle to a process actor (Options::process()).
  explicit ActorRef(std::shared_ptr<detail::ProcessActor> r) noexcept : remote_(std::move(r)) {}

  /// Queues a call of `method` with `args` and returns its Ref at once.
  /// Arguments are moved or copied into the message; a Ref<U> passed where the
  /// method takes a U is resolved first (the call waits for it, in order).
  /// Checked where it is written (detail/call_check.hpp): each argument must
  /// convert to its parameter without narrowing, and their number match.
  template <class M, class... A>
  Ref<detail::call_result_t<M>> call(M method, A&&... args) const {
    if constexpr (!detail::call_check<T, M, A...>::ok) {
      detail::call_check<T, M, A...>::report();
      return {};
    } else {
      if (remote_) return detail::submit_call<T>(*remote_, method, std::forward<A>(args)...);
      check();
      auto* m = new detail::CallMessage<T, M, std::decay_t<A>...>(method, std::forward<A>(args)...);
      m->set_origin(cell_->id());
      m->set_context(cell_->pool());
      if (trace::on() && (trace::inbound_flow() || trace::sample())) detail::trace_call<T>(*m, method);
      Ref<detail::call_result_t<M>> ref{detail::StatePtr<detail::State<detail::call_result_t<M>>>(m)};
      cell_->enqueue(m);
      return ref;
    }
  }

  /// Graceful stop: calls queued before it run, then on_stop, then the actor
  /// dies (DeathCause::stopped). The Ref completes once it has stopped.
  Ref<void> stop() const {
    if (remote_) return remote_->stop();
    check();
    auto* m = new detail::StopMessage();
    Ref<void> ref{detail::StatePtr<detail::State<void>>(m)};
    cell_->enqueue(m);
    return ref;
  }
  /// Immediate death (DeathCause::killed): queued calls fail with ActorDied;
  /// a method already running finishes first. on_stop does not run.
  void kill() const {
    if (remote_) return remote_->kill();
    check();
    cell_->kill();
  }

  bool valid() const noexcept { return cell_ || remote_; }
  bool alive() const noexcept { return remote_ ? remote_->alive() : cell_ && cell_->alive(); }
  std::uint64_t id() const noexcept { return remote_ ? remote_->id() : cell_ ? cell_->id() : 0; }
  const std::string& name() const noexcept {
    static const std::string none;
    return remote_ ? remote_->name() : cell_ ? cell_->name() : none;
  }
  std::size_t rank() const noexcept { return remote_ ? remote_->rank() : cell_ ? cell_->rank() : 0; }
  /// Why the actor died, as its callers' ActorDied says ("actor #7 is dead:
  /// failed: constructor or on_start threw: ..."); "" while it lives.
  std::string death() const {
    std::exception_ptr e;
    if (remote_) {
      if (!remote_->alive()) e = remote_->death_error();
    } else if (cell_ && cell_->dead()) {
      e = cell_->died_error();
    }
    return detail::what_of(e);
  }
  /// The steps it noted with troupe::note_step, as last heard (a process
  /// actor's worker tells its driver every 50 ms while they move).
  telemetry::StepProgress progress() const noexcept {
    return remote_ ? remote_->progress() : cell_ ? cell_->progress() : telemetry::StepProgress{};
  }
  /// The in-process cell (null for a process actor).
  detail::Cell<T>* cell() const noexcept { return cell_.get(); }
  /// The process actor behind this handle (null for an in-process actor).
  detail::ProcessActor* remote() const noexcept { return remote_.get(); }

  friend bool operator==(const ActorRef& a, const ActorRef& b) noexcept {
    return a.cell_ == b.cell_ && a.remote_ == b.remote_;
  }

 private:
  void check() const {
    if (!cell_) throw UsageError("call through an empty troupe::ActorRef");
  }
  std::shared_ptr<detail::Cell<T>> cell_;
  std::shared_ptr<detail::ProcessActor> remote_;
};

static_assert(std::is_nothrow_move_constructible_v<ActorRef<int>>);

/// Inside an actor of class T (a method, on_start, a Task after a co_await):
/// a handle to itself, as its callers hold one (to hand to other actors, or
/// to call itself). UsageError outside such an actor.
template <class T>
ActorRef<T> self_ref() {
  auto* cell = dynamic_cast<detail::Cell<T>*>(current_actor());
  if (!cell)
    throw UsageError(fmt::format("troupe::self_ref<{}>() outside an actor of that class", detail::type_name<T>()));
  return ActorRef<T>(std::static_pointer_cast<detail::Cell<T>>(cell->shared_from_this()));
}

}  // namespace troupe

#include "runtime/detail/handle_codec.hpp"
#include "runtime/detail/process_call.hpp"
