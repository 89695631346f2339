#pragma once
// Ref<T>: the result of a call, available at once and filled in later.
//
//   Ref<int> r = counter.call(&Counter::add, 5);  // never blocks
//   int v = r.get();                              // blocks; or r.get(100ms)
//   int w = co_await r;                           // in a troupe::Task
//
// In an asio::awaitable coroutine, `co_await r.awaitable()` (include
// runtime/asio.hpp: this header does not pull Asio in).
// Refs are cheap to copy (one shared state). An exception thrown by the method
// is rethrown, unchanged, by get() and co_await.
#include <chrono>
#include <coroutine>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "runtime/detail/pool.hpp"
#include "runtime/detail/scheduler.hpp"
#include "runtime/context.hpp"
#include "runtime/detail/state.hpp"
#include "runtime/detail/waits.hpp"
#include "runtime/errors.hpp"

namespace troupe {

template <class T>
class Ref;

namespace detail {
template <class T>
inline constexpr bool asio_bridge_missing = false;
/// Asio's side of a Ref (awaitable(), async_wait()): defined by runtime/asio.hpp.
template <class Enable>
struct AsioBridge {
  static_assert(asio_bridge_missing<Enable>,
                "troupe: include \"runtime/asio.hpp\" to await a Ref in an asio::awaitable coroutine "
                "(co_await ref.awaitable()) or to wait on it with an Asio completion token");
};
}  // namespace detail

template <class T>
struct is_ref : std::false_type {};
template <class T>
struct is_ref<Ref<T>> : std::true_type {};
template <class T>
inline constexpr bool is_ref_v = is_ref<std::decay_t<T>>::value;

template <class T>
class Ref {
 public:
  using value_type = T;
  using state_type = detail::State<T>;
  using stored_type = detail::stored_t<T>;

  Ref() noexcept = default;
  explicit Ref(detail::StatePtr<state_type> s) noexcept : s_(std::move(s)) {}

  /// A Ref that is already complete with `v`.
  template <class... A>
  static Ref from_value(A&&... v) {
    auto* s = new state_type(1);
    s->set_value(std::forward<A>(v)...);
    return Ref{detail::StatePtr<state_type>(s)};
  }
  /// A Ref that is already complete with error `e`.
  static Ref from_error(std::exception_ptr e) {
    auto* s = new state_type(1);
    s->set_error(std::move(e));
    return Ref{detail::StatePtr<state_type>(s)};
  }

  bool valid() const noexcept { return static_cast<bool>(s_); }
  bool ready() const noexcept { return s_ && s_->ready(); }
  bool has_error() const noexcept { return s_ && s_->has_error(); }

  void wait() const {
    check();
    s_->wait();
  }
  template <class Rep, class Per>
  bool wait_for(std::chrono::duration<Rep, Per> d) const {
    check();
    return s_->wait_for(d);
  }

  /// Blocks until the result is there; returns it or rethrows the method's exception.
  T get() const& {
    wait();
    return result();
  }
  T get() && {
    wait();
    return take();
  }
  /// As get(), but raises TimeoutError after `timeout` (the call goes on).
  template <class Rep, class Per>
  T get(std::chrono::duration<Rep, Per> timeout) const& {
    check();
    s_->wait_or_throw(timeout);
    return result();
  }
  template <class Rep, class Per>
  T get(std::chrono::duration<Rep, Per> timeout) && {
    check();
    s_->wait_or_throw(timeout);
    return take();
  }

  /// Ref to f(value) (or f() for Ref<void>); f runs on the runtime's pool once
  /// this Ref is ready. An error skips f and passes through. If f returns a
  /// Ref, the result is that Ref's result.
  template <class F>
  auto then(F f) const;

  /// co_await in a troupe::Task: resumes on the awaiting actor's strand.
  struct Awaiter {
    detail::StatePtr<state_type> s;
    std::exception_ptr refused;
    std::uint64_t waiter = 0;
    // A non-reentrant actor holds its mailbox until this wait ends: a wait
    // for a call that can only run after it (its own, or one closing a cycle
    // of waits) is refused here, and await_resume throws the UsageError.
    bool await_ready() {
      if (s->ready()) return true;
      if (ActorContext* me = current_actor(); me && !me->reentrant()) {
        try {
          detail::begin_wait(me->id(), s->origin(), s.get(), detail::WaitKind::await);
          waiter = me->id();
        } catch (...) {
          refused = std::current_exception();
          return true;
        }
      }
      return false;
    }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      detail::Scheduler* sched = detail::scheduler_of(h);
      s->on_ready([sched, h, waiter = waiter]() {
        detail::end_wait(waiter);
        if (sched)
          sched->schedule(h);
        else
          h.resume();
      });
    }
    T await_resume() const {
      if (refused) std::rethrow_exception(refused);
      return Ref(s).result();
    }
  };
  Awaiter operator co_await() const {
    check();
    return Awaiter{s_, nullptr, 0};
  }

  /// In an asio::awaitable coroutine: `T v = co_await ref.awaitable();`
  /// (Asio's own await_transform admits only its awaitables and operations).
  /// Needs runtime/asio.hpp.
  template <class Enable = void>
  auto awaitable() const {
    check();
    return detail::AsioBridge<Enable>::template awaitable<T>(*this);
  }

  /// Asio async operation completing with (exception_ptr) once the Ref is
  /// ready, on the handler's associated executor; works with any token.
  /// Needs runtime/asio.hpp.
  template <class Token, class Enable = void>
  auto async_wait(Token&& token) const {
    check();
    return detail::AsioBridge<Enable>::async_wait(s_, std::forward<Token>(token));
  }

  /// The value or the error, once ready (for the Asio bridge).
  T result_now() const { return result(); }

  state_type* state() const noexcept { return s_.get(); }

 private:
  void check() const {
    if (!s_)
      throw UsageError(
          "use of an empty troupe::Ref (default-constructed, moved from, or already consumed by "
          "std::move(ref).get())");
  }
  T result() const {
    if (s_->error()) std::rethrow_exception(s_->error());
    if constexpr (!std::is_void_v<T>) return s_->value();
  }
  // get() on an rvalue consumes the Ref: its value is moved out when no copy
  // shares the state, and the Ref is left empty either way, so a second get()
  // is a UsageError, never a silently moved-from value.
  T take() {
    auto s = std::move(s_);
    if (s->error()) std::rethrow_exception(s->error());
    if constexpr (!std::is_void_v<T>) {
      if (s->unique()) return std::move(s->value());
      return s->value();
    }
  }

  detail::StatePtr<state_type> s_;
};

/// The producing side of a Ref. Dropping a Promise that was never fulfilled
/// completes its Ref with BrokenRef, so no waiter hangs.
template <class T>
class Promise {
 public:
  using state_type = detail::State<T>;
  Promise() : s_(new state_type(1)) {}
  explicit Promise(detail::StatePtr<state_type> s) noexcept : s_(std::move(s)) {}
  Promise(Promise&&) noexcept = default;
  Promise& operator=(Promise&& o) noexcept {
    abandon();
    s_ = std::move(o.s_);
    return *this;
  }
  ~Promise() { abandon(); }

  Ref<T> ref() const { return Ref<T>(s_); }
  template <class... A>
  void set_value(A&&... a) {
    s_->set_value(std::forward<A>(a)...);
  }
  void set_error(std::exception_ptr e) noexcept { s_->set_error(std::move(e)); }
  /// Runs f and stores its result or exception.
  template <class F>
  void set_from(F&& f) noexcept {
    try {
      if constexpr (std::is_void_v<T>) {
        f();
        s_->set_value();
      } else {
        s_->set_value(f());
      }
    } catch (...) {
      s_->set_error(std::current_exception());
    }
  }
  state_type* state() const noexcept { return s_.get(); }

 private:
  void abandon() noexcept {
    if (s_ && !s_->ready())
      s_->set_error(std::make_exception_ptr(BrokenRef("the producer of this Ref was destroyed before it ran")));
  }
  detail::StatePtr<state_type> s_;
};

namespace detail {
template <class T, class F>
struct then_result {
  using raw = std::conditional_t<std::is_void_v<T>, std::invoke_result<F>,
                                 std::invoke_result<F, stored_t<T>&>>;
  using type = typename raw::type;
};
template <class U>
struct unwrap_ref {
  using type = U;
};
template <class U>
struct unwrap_ref<Ref<U>> {
  using type = U;
};

/// Completes `p` from the ready state `src` of type Ref<U> (flattening).
template <class U>
void forward_into(Promise<U>& p, const Ref<U>& src) {
  src.state()->on_ready([p = std::move(p), src]() mutable {
    if (src.state()->error())
      p.set_error(src.state()->error());
    else if constexpr (std::is_void_v<U>)
      p.set_value();
    else
      p.set_value(src.state()->value());
  });
}
}  // namespace detail

template <class T>
template <class F>
auto Ref<T>::then(F f) const {
  using U = typename detail::then_result<T, F>::type;
  using R = typename detail::unwrap_ref<U>::type;
  check();
  Promise<R> out;
  Ref<R> result = out.ref();
  result.state()->set_context(s_->context());
  s_->on_ready([src = s_, out = std::move(out), f = std::move(f)]() mutable {
    auto run = [src, out = std::move(out), f = std::move(f)]() mutable {
      if (src->error()) return out.set_error(src->error());
      try {
        if constexpr (is_ref_v<U>) {
          U inner = [&]() -> U {
            if constexpr (std::is_void_v<T>)
              return std::invoke(f);
            else
              return std::invoke(f, src->value());
          }();
          detail::forward_into(out, inner);
        } else {
          out.set_from([&]() -> U {
            if constexpr (std::is_void_v<T>)
              return std::invoke(f);
            else
              return std::invoke(f, src->value());
          });
        }
      } catch (...) {
        out.set_error(std::current_exception());
      }
    };
    if (auto* pool = src->context())
      pool->post(std::move(run));
    else
      run();
  });
  return result;
}

}  // namespace troupe
