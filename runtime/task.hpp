#pragma once
// troupe::Task<T>: the coroutine type for actor methods and driver code.
//
// A Task is lazy: it starts when awaited or when the runtime starts it (an
// actor method returning Task<R> is started on the actor's strand; a driver
// runs one with Runtime::start). Inside, `co_await ref` and `co_await task`
// suspend without blocking a thread and resume in the same execution context
// (the actor's strand, with troupe::self() valid, or the runtime pool).
#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "runtime/detail/scheduler.hpp"

namespace troupe {

template <class T = void>
class Task;

namespace detail {

/// Told when a top-level task reaches its final suspend point.
class TaskSink {
 public:
  virtual void task_done(std::coroutine_handle<> h) noexcept = 0;

 protected:
  ~TaskSink() = default;
};

struct TaskPromiseBase {
  std::coroutine_handle<> continuation;
  Scheduler* scheduler = nullptr;
  TaskSink* sink = nullptr;
  std::exception_ptr error;

  std::suspend_always initial_suspend() noexcept { return {}; }
  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      auto& p = h.promise();
      if (p.continuation) return p.continuation;
      if (p.sink) p.sink->task_done(h);  // may destroy the frame: touch nothing after
      return std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using value_type = T;
  using promise_type = detail::TaskPromise<T>;
  using handle_type = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  explicit Task(handle_type h) noexcept : h_(h) {}
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const noexcept { return static_cast<bool>(h_); }
  /// Gives up ownership of the frame (the runtime then owns and destroys it).
  handle_type release() noexcept { return std::exchange(h_, {}); }

  auto operator co_await() && { return awaiter(); }
  auto operator co_await() & { return awaiter(); }

 private:
  struct Awaiter {
    handle_type h;
    bool await_ready() const noexcept { return h.done(); }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> caller) noexcept {
      h.promise().continuation = caller;
      h.promise().scheduler = detail::scheduler_of(caller);
      return h;
    }
    T await_resume() { return h.promise().take(); }
  };
  Awaiter awaiter() const {
    if (!h_) throw std::logic_error("co_await on an empty troupe::Task");
    return Awaiter{h_};
  }
  handle_type h_;
};

namespace detail {
template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<Task<T>> : std::true_type {};
}  // namespace detail

static_assert(std::is_nothrow_move_constructible_v<Task<int>>);

}  // namespace troupe
