#pragma once
// The pool a Runtime's actors run on: an Asio io_context run by pool threads
// (internal: no public header includes this one).
//
// An idle pool thread polls for up to `spin` before it sleeps, one spinner at
// a time, so a synchronous call-and-get finds a thread awake while at most one
// core idles.
//
// The pool grows while its threads block. A thread that has to sleep in a
// get() (BlockingHook) leaves the pool one runnable thread short; if that
// brings it under its size, a parked thread is woken or a new one started
// (up to a cap), as Go's scheduler hands a blocked thread's work to another.
// When the blocked thread wakes, the pool is over its size, and the first
// thread to finish a handler parks. So actors that block in get() on other
// actors can never take every thread from the calls they wait for.
#include <chrono>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "runtime/detail/blocking.hpp"
#include "runtime/detail/pool.hpp"

namespace troupe::detail {

class Executor final : public BlockingHook, public std::enable_shared_from_this<Executor> {
 public:
  /// Starts `size` threads (the number kept runnable); at most `max_threads`
  /// ever, counting those started for blocked ones.
  static std::shared_ptr<Executor> start(unsigned size, std::chrono::microseconds spin, unsigned max_threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  boost::asio::io_context& io() noexcept { return *io_; }
  const std::shared_ptr<boost::asio::io_context>& io_shared() const noexcept { return io_; }
  PoolHandle* pool() const noexcept { return pool_; }
  unsigned size() const noexcept { return size_; }
  /// Threads started so far (the size plus those started for blocked ones).
  std::size_t threads() const;

  /// Shutdown: posts run inline from now on, no new work is waited for, and
  /// the threads exit once the queue is empty. After `limit`, with
  /// `stop_io`, the io_context is stopped so idle threads exit at once
  /// (work that never ends: a socket, a timer); without it, a thread left
  /// inside a handler can still run what is queued behind it (an actor's
  /// death) when it is done. Threads still there are detached and left to
  /// finish: their number is returned.
  std::size_t stop(std::chrono::milliseconds limit, bool stop_io);

  void begin_blocking() noexcept override;
  void end_blocking() noexcept override;

 private:
  struct Thread {
    std::thread t;
    bool done = false;  // under mu_
  };
  Executor(unsigned size, std::chrono::microseconds spin, unsigned max_threads);
  void add_thread();  // under mu_
  void run(std::size_t index);
  void maybe_park();

  std::shared_ptr<boost::asio::io_context> io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  PoolHandle* pool_;
  const unsigned size_, max_threads_;
  const std::chrono::microseconds spin_;
  std::atomic<int> spinners_{0};

  mutable std::mutex mu_;
  std::condition_variable park_cv_, exit_cv_;
  std::vector<std::unique_ptr<Thread>> threads_;
  // Threads neither blocked in a get() nor parked: written under mu_, read
  // without it on the hot path (after every handler).
  std::atomic<int> active_{0};
  int parked_ = 0;
  int unparks_ = 0;      // wake-ups owed to parked threads
  std::size_t running_ = 0;
  bool stopping_ = false, warned_ = false;
};

}  // namespace troupe::detail
