#pragma once
// CallMessage: one method call, queued in an actor's mailbox and holding the
// caller's result slot (a single allocation for both).
#include <exception>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "runtime/detail/cell.hpp"
#include "runtime/detail/method_traits.hpp"

namespace troupe::detail {

/// Runs an asio::awaitable method on the actor's strand: runtime/asio.hpp
/// specialises it, so that only programs with such methods include Asio
/// (a call without it is refused where it is written: call_check.hpp).
template <class Awaitable>
struct AwaitableRunner {
  static constexpr bool missing = true;
};
template <class Awaitable>
inline constexpr bool awaitable_runner_missing = requires { AwaitableRunner<Awaitable>::missing; };

template <class T, class M, class... S>
class CallMessage final : public Message, public State<call_result_t<M>>, public TaskSink {
  using traits = method_traits<M>;
  using params = typename traits::params;
  using R = call_result_t<M>;
  using MR = typename traits::return_type;
  static constexpr MethodKind kind = call_result<MR>::kind;

 public:
  template <class... A>
  explicit CallMessage(M method, A&&... args)
      : State<R>(2), method_(method), args_(std::forward<A>(args)...) {}

  Step run(CellBase& base) override {
    auto& cell = static_cast<Cell<T>&>(base);
    failure_ = nullptr;
    completed_sync_ = false;
    if (auto e = dep_error(std::index_sequence_for<S...>{})) {
      this->set_error(std::move(e));
      this->release();
      return Step::done;
    }
    T& obj = *cell.instance();
    if constexpr (kind == MethodKind::plain) {
      try {
        if constexpr (std::is_void_v<R>) {
          invoke(obj, cell.retries_enabled());
          this->set_value();
        } else {
          this->set_value(invoke(obj, cell.retries_enabled()));
        }
      } catch (const ActorFailure&) {
        throw;
      } catch (...) {
        this->set_error(std::current_exception());
      }
      this->release();
      return Step::done;
    } else if constexpr (kind == MethodKind::ref) {
      MR inner = invoke(obj, cell.retries_enabled());
      if (!inner.valid()) {
        this->set_error(std::make_exception_ptr(UsageError("actor method returned an empty troupe::Ref")));
        this->release();
        return Step::done;
      }
      this->add_ref();
      inner.state()->on_ready([this, inner]() {
        if (inner.state()->error())
          this->set_error(inner.state()->error());
        else if constexpr (std::is_void_v<R>)
          this->set_value();
        else
          this->set_value(inner.state()->value());
        this->release();
      });
      this->release();
      return Step::done;
    } else {
      keep_instance_ = cell.instance_ptr();
      keep_cell_ = cell.shared_from_this();
      in_run_ = true;
      if constexpr (kind == MethodKind::task) {
        auto h = invoke(obj, cell.retries_enabled()).release();
        h.promise().scheduler = &cell;
        h.promise().sink = this;
        h.resume();
      } else {
        if constexpr (!awaitable_runner_missing<MR>)
          AwaitableRunner<MR>::spawn(cell, invoke(obj, cell.retries_enabled()),
                                   [this](std::exception_ptr e, auto&&... v) {
                                     if (keep_cell_) keep_cell_->trace_finished(this);
                                     if (e)
                                       complete_error(std::move(e));
                                     else
                                       this->set_value(std::forward<decltype(v)>(v)...);
                                     finish_async();
                                   });
      }
      in_run_ = false;
      if (!completed_sync_) return Step::suspended;
      keep_cell_.reset();
      if (failure_) std::rethrow_exception(failure_);
      this->release();
      return Step::done;
    }
  }

  void task_done(std::coroutine_handle<> h) noexcept override {
    auto typed = std::coroutine_handle<TaskPromise<R>>::from_address(h.address());
    auto& p = typed.promise();
    if (keep_cell_) keep_cell_->trace_finished(this);
    if (p.error) {
      complete_error(p.error);
    } else if constexpr (std::is_void_v<R>) {
      this->set_value();
    } else {
      this->set_value(std::move(*p.value));
    }
    typed.destroy();
    finish_async();
  }

  void fail(std::exception_ptr e) noexcept override {
    this->set_error(std::move(e));
    this->release();
  }
  void abandon(std::exception_ptr e) noexcept override { this->set_error(std::move(e)); }
  void done() noexcept override { this->release(); }

  bool deps_ready() const noexcept override { return deps_ready(std::index_sequence_for<S...>{}); }
  void on_dep_ready(std::shared_ptr<CellBase> cell) noexcept override {
    on_dep_ready(std::move(cell), std::index_sequence_for<S...>{});
  }

 private:
  // Param I receives the value of a Ref argument, not the Ref itself.
  template <std::size_t I>
  static constexpr bool resolves() {
    return is_ref_v<std::tuple_element_t<I, std::tuple<S...>>> &&
           !is_ref_v<std::tuple_element_t<I, params>>;
  }

  template <std::size_t I, bool Keep>
  decltype(auto) pass() {
    using Stored = std::tuple_element_t<I, std::tuple<S...>>;
    using P = std::tuple_element_t<I, params>;
    auto& s = std::get<I>(args_);
    if constexpr (resolves<I>())
      return (s.state()->value());
    else if constexpr (Keep && std::is_copy_constructible_v<Stored> && !std::is_rvalue_reference_v<P>)
      return (s);  // kept intact for a retry after a restart
    else
      return std::move(s);
  }

  template <bool Keep, std::size_t... I>
  decltype(auto) invoke_with(T& obj, std::index_sequence<I...>) {
    return std::invoke(method_, obj, pass<I, Keep>()...);
  }
  decltype(auto) invoke(T& obj, bool keep) {
    if (keep) return invoke_with<true>(obj, std::index_sequence_for<S...>{});
    return invoke_with<false>(obj, std::index_sequence_for<S...>{});
  }

  template <std::size_t... I>
  bool deps_ready(std::index_sequence<I...>) const noexcept {
    return (dep_ready<I>() && ...);
  }
  template <std::size_t I>
  bool dep_ready() const noexcept {
    if constexpr (resolves<I>())
      return std::get<I>(args_).ready();
    else
      return true;
  }
  template <std::size_t... I>
  std::exception_ptr dep_error(std::index_sequence<I...>) const noexcept {
    std::exception_ptr e;
    ((e = e ? e : error_of<I>()), ...);
    return e;
  }
  template <std::size_t I>
  std::exception_ptr error_of() const noexcept {
    if constexpr (resolves<I>())
      return std::get<I>(args_).state()->error();
    else
      return nullptr;
  }
  template <std::size_t... I>
  void on_dep_ready(std::shared_ptr<CellBase> cell, std::index_sequence<I...>) noexcept {
    bool registered = false;
    ((registered = registered || watch<I>(cell)), ...);
    if (!registered) cell->wake();
  }
  template <std::size_t I>
  bool watch(const std::shared_ptr<CellBase>& cell) noexcept {
    if constexpr (resolves<I>()) {
      auto& ref = std::get<I>(args_);
      if (ref.ready()) return false;
      ref.state()->on_ready([weak = std::weak_ptr<CellBase>(cell)]() {
        if (auto c = weak.lock()) c->wake();
      });
      return true;
    } else {
      return false;
    }
  }

  void complete_error(std::exception_ptr e) noexcept {
    if (is_actor_failure(e))
      failure_ = std::move(e);
    else
      this->set_error(std::move(e));
  }
  // A coroutine call finished: on the strand, either inside run() or later.
  void finish_async() noexcept {
    keep_instance_.reset();
    if (in_run_) {
      completed_sync_ = true;
      return;
    }
    auto cell = std::move(keep_cell_);
    cell->call_finished(this, failure_);  // may release this
  }

  M method_;
  std::tuple<S...> args_;
  std::shared_ptr<T> keep_instance_;
  std::shared_ptr<CellBase> keep_cell_;
  std::exception_ptr failure_;
  bool in_run_ = false;
  bool completed_sync_ = false;
};

/// stop(): runs on_stop once every earlier call has run, then the actor dies.
/// Out of line (actor_cell.cpp) so its vtable and destructor live in one place.
class StopMessage final : public Message, public State<void> {
 public:
  StopMessage();
  ~StopMessage() override;
  Step run(CellBase& cell) override;
  // Refused or cut short by another death: either way the actor has stopped.
  void fail(std::exception_ptr) noexcept override;
  void abandon(std::exception_ptr) noexcept override;
  void done() noexcept override;
  bool control() const noexcept override { return true; }
};

}  // namespace troupe::detail
