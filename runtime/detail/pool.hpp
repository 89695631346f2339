#pragma once
// Where continuations (Ref::then, monitors) run: a runtime's pool while it
// lives, inline after it has shut down. A Ref may outlive its runtime, so the
// handle it points to is never freed (one small object per Runtime ever made).
#include <coroutine>
#include <functional>
#include <mutex>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "runtime/detail/scheduler.hpp"

namespace troupe::detail {

class PoolHandle final : public Scheduler {
 public:
  /// A new handle for `io`, kept for the life of the process.
  static PoolHandle* create(boost::asio::io_context& io);

  /// Runs `fn` on the pool, or right here once the pool is gone.
  template <class F>
  void post(F&& fn) {
    {
      std::lock_guard lock(mu_);
      if (io_) {
        boost::asio::post(*io_, std::forward<F>(fn));
        return;
      }
    }
    fn();
  }
  /// Runs `fn` on `strand` (in order with everything else posted there), or
  /// right here once the pool is gone.
  template <class Strand, class F>
  void post_on(const Strand& strand, F&& fn) {
    {
      std::lock_guard lock(mu_);
      if (io_) {
        boost::asio::post(strand, std::forward<F>(fn));
        return;
      }
    }
    fn();
  }
  /// Resumes a driver Task on the pool (inline once the pool is gone, so a
  /// Task whose awaited work failed at shutdown still finishes).
  void schedule(std::coroutine_handle<> h) override {
    post([h]() { h.resume(); });
  }
  /// Called at shutdown: from now on, post() runs inline.
  void detach() {
    std::lock_guard lock(mu_);
    io_ = nullptr;
  }

 private:
  explicit PoolHandle(boost::asio::io_context& io) : io_(&io) {}
  std::mutex mu_;
  boost::asio::io_context* io_;
};

}  // namespace troupe::detail
