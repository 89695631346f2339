#pragma once
// Where continuations (Ref::then, monitors) run: a runtime's pool while it
// lives, inline after it has shut down. A Ref may outlive its runtime, so the
// handle it points to is never freed (one small object per Runtime ever made).
// The pool itself (an Asio io_context and its threads) is behind this header:
// runtime/detail/executor.hpp.
#include <coroutine>
#include <mutex>
#include <type_traits>
#include <utility>

#include "runtime/detail/scheduler.hpp"

namespace boost::asio {
class io_context;
}

namespace troupe::detail {

/// A move-only piece of work for the pool: runs once, then deletes itself.
struct Job {
  virtual ~Job() = default;
  virtual void run() noexcept = 0;
};
template <class F>
struct JobOf final : Job {
  F fn;
  explicit JobOf(F f) : fn(std::move(f)) {}
  void run() noexcept override {
    fn();
    delete this;
  }
};

class PoolHandle final : public Scheduler {
 public:
  /// A new handle for `io`, kept for the life of the process.
  static PoolHandle* create(boost::asio::io_context& io);

  /// Runs `fn` on the pool, or right here once the pool is gone.
  template <class F>
  void post(F&& fn) {
    post_job(new JobOf<std::decay_t<F>>(std::forward<F>(fn)));
  }
  /// Resumes a driver Task on the pool (inline once the pool is gone, so a
  /// Task whose awaited work failed at shutdown still finishes).
  void schedule(std::coroutine_handle<> h) override {
    post([h]() { h.resume(); });
  }
  /// Called at shutdown: from now on, post() runs inline.
  void detach();
  /// The io_context while the pool lives (null after detach), under its lock.
  template <class F>
  bool with_io(F&& fn) {
    std::lock_guard lock(mu_);
    if (!io_) return false;
    fn(*io_);
    return true;
  }

 private:
  explicit PoolHandle(boost::asio::io_context& io) : io_(&io) {}
  void post_job(Job* job);
  std::mutex mu_;
  boost::asio::io_context* io_;
};

}  // namespace troupe::detail
