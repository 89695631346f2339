#pragma once
// ActorRef<T>: a typed handle to an actor; calls through it never block.
#include <memory>
#include <string>
#include <type_traits>

#include "runtime/detail/call.hpp"

namespace troupe {

template <class T>
class ActorRef {
 public:
  ActorRef() noexcept = default;
  explicit ActorRef(std::shared_ptr<detail::Cell<T>> cell) noexcept : cell_(std::move(cell)) {}

  /// Queues a call of `method` with `args` and returns its Ref at once.
  /// Arguments are moved or copied into the message; a Ref<U> passed where the
  /// method takes a U is resolved first (the call waits for it, in order).
  template <class M, class... A>
  Ref<detail::call_result_t<M>> call(M method, A&&... args) const {
    using traits = detail::method_traits<M>;
    static_assert(std::is_base_of_v<typename traits::class_type, T>,
                  "ActorRef<T>::call: the method does not belong to T");
    static_assert(traits::arity == sizeof...(A), "ActorRef<T>::call: wrong number of arguments");
    using Msg = detail::CallMessage<T, M, std::decay_t<A>...>;
    check();
    auto* m = new Msg(method, std::forward<A>(args)...);
    m->set_origin(cell_->id());
    m->set_context(cell_->pool());
    Ref<detail::call_result_t<M>> ref{detail::StatePtr<detail::State<detail::call_result_t<M>>>(m)};
    cell_->enqueue(m);
    return ref;
  }

  /// Graceful stop: calls queued before it run, then on_stop, then the actor
  /// dies (DeathCause::stopped). The Ref completes once it has stopped.
  Ref<void> stop() const {
    check();
    auto* m = new detail::StopMessage();
    Ref<void> ref{detail::StatePtr<detail::State<void>>(m)};
    cell_->enqueue(m);
    return ref;
  }
  /// Immediate death (DeathCause::killed): queued calls fail with ActorDied;
  /// a method already running finishes first. on_stop does not run.
  void kill() const {
    check();
    cell_->kill();
  }

  bool valid() const noexcept { return static_cast<bool>(cell_); }
  bool alive() const noexcept { return cell_ && cell_->alive(); }
  std::uint64_t id() const noexcept { return cell_ ? cell_->id() : 0; }
  const std::string& name() const noexcept {
    static const std::string none;
    return cell_ ? cell_->name() : none;
  }
  std::size_t rank() const noexcept { return cell_ ? cell_->rank() : 0; }
  detail::Cell<T>* cell() const noexcept { return cell_.get(); }

  friend bool operator==(const ActorRef& a, const ActorRef& b) noexcept { return a.cell_ == b.cell_; }

 private:
  void check() const {
    if (!cell_) throw UsageError("call through an empty troupe::ActorRef");
  }
  std::shared_ptr<detail::Cell<T>> cell_;
};

static_assert(std::is_nothrow_move_constructible_v<ActorRef<int>>);

}  // namespace troupe
