#pragma once
// Where a suspended troupe::Task resumes: an actor's strand or the runtime pool.
#include <coroutine>

namespace troupe::detail {

class Scheduler {
 public:
  /// Resumes `h` later, in this scheduler's execution context.
  virtual void schedule(std::coroutine_handle<> h) = 0;

 protected:
  ~Scheduler() = default;
};

/// Reads the scheduler of an awaiting coroutine, if its promise has one.
template <class P>
Scheduler* scheduler_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (requires { h.promise().scheduler; })
    return h.promise().scheduler;
  else
    return nullptr;
}

}  // namespace troupe::detail
