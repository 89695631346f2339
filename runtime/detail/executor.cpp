#include "runtime/detail/executor.hpp"

#include <algorithm>
#include <cstdio>

#include <boost/asio/post.hpp>

namespace troupe::detail {

namespace {
thread_local BlockingHook* tls_hook = nullptr;
}  // namespace

BlockingHook* blocking_hook() noexcept { return tls_hook; }
void set_blocking_hook(BlockingHook* h) noexcept { tls_hook = h; }

PoolHandle* PoolHandle::create(boost::asio::io_context& io) {
  static std::mutex mu;
  static auto* all = new std::vector<std::unique_ptr<PoolHandle>>();  // reachable, never freed
  std::lock_guard lock(mu);
  all->push_back(std::unique_ptr<PoolHandle>(new PoolHandle(io)));
  return all->back().get();
}

void PoolHandle::post_job(Job* job) {
  {
    std::lock_guard lock(mu_);
    if (io_) {
      boost::asio::post(*io_, [job]() { job->run(); });
      return;
    }
  }
  job->run();
}

void PoolHandle::detach() {
  std::lock_guard lock(mu_);
  io_ = nullptr;
}

Executor::Executor(unsigned size, std::chrono::microseconds spin, unsigned max_threads)
    : io_(std::make_shared<boost::asio::io_context>()),
      work_(boost::asio::make_work_guard(*io_)),
      pool_(PoolHandle::create(*io_)),
      size_(size),
      max_threads_(std::max(max_threads, size)),
      spin_(spin) {}

std::shared_ptr<Executor> Executor::start(unsigned size, std::chrono::microseconds spin, unsigned max_threads) {
  std::shared_ptr<Executor> e(new Executor(size, spin, max_threads));
  std::lock_guard lock(e->mu_);
  for (unsigned i = 0; i < size; ++i) {
    ++e->active_;
    e->add_thread();
  }
  return e;
}

Executor::~Executor() {
  // Only reached once every thread has exited (each holds the executor).
  for (auto& t : threads_)
    if (t->t.joinable()) t->t.detach();
}

void Executor::add_thread() {
  const std::size_t index = threads_.size();
  threads_.push_back(std::make_unique<Thread>());
  ++running_;
  // The thread holds the executor: one left running past stop() keeps the
  // io_context and this object alive until it is done.
  threads_.back()->t = std::thread([self = shared_from_this(), index]() { self->run(index); });
}

std::size_t Executor::threads() const {
  std::lock_guard lock(mu_);
  return threads_.size();
}

// A pool thread polls for a short while before it sleeps: a synchronous
// call-and-get ping-pong then finds the thread awake instead of paying a
// condition-variable wake-up (tens of microseconds) on every call. Only one
// idle thread spins at a time, so spinning never takes more than one core
// from the threads doing work.
void Executor::run(std::size_t index) {
  set_blocking_hook(this);
  using clock = std::chrono::steady_clock;
  for (;;) {
    if (io_->poll() > 0) {
      maybe_park();
      continue;
    }
    if (io_->stopped()) break;
    int expected = 0;
    if (spin_.count() > 0 && spinners_.compare_exchange_strong(expected, 1)) {
      const auto until = clock::now() + spin_;
      std::size_t ran = 0;
      while (ran == 0 && clock::now() < until && !io_->stopped()) ran = io_->poll_one();
      spinners_.store(0);
      if (ran) {
        maybe_park();
        continue;
      }
    }
    if (io_->run_one() == 0) break;  // stopped, or out of work after shutdown
    maybe_park();
  }
  set_blocking_hook(nullptr);
  std::lock_guard lock(mu_);
  threads_[index]->done = true;
  --running_;
  --active_;
  exit_cv_.notify_all();
}

// More runnable threads than the pool's size (a blocked one woke up): this
// one waits until a blocked thread needs it, or the pool stops.
void Executor::maybe_park() {
  if (active_.load(std::memory_order_relaxed) <= static_cast<int>(size_)) return;  // the usual case: no lock
  std::unique_lock lock(mu_);
  if (stopping_ || active_ <= static_cast<int>(size_)) return;
  --active_;
  ++parked_;
  park_cv_.wait(lock, [&]() { return stopping_ || unparks_ > 0; });
  --parked_;
  if (unparks_ > 0)
    --unparks_;  // the waker counted this thread active again
  else
    ++active_;
}

void Executor::begin_blocking() noexcept {
  std::lock_guard lock(mu_);
  --active_;
  if (stopping_ || active_ >= static_cast<int>(size_)) return;
  ++active_;  // the thread that takes over
  if (parked_ > unparks_) {
    ++unparks_;
    park_cv_.notify_one();
    return;
  }
  if (threads_.size() >= max_threads_) {
    --active_;
    if (!warned_) {
      warned_ = true;
      std::fprintf(stderr,
                   "troupe: all %zu pool threads are blocked in get(); the pool grows no further (its cap). Prefer "
                   "co_await in actor methods: it waits without holding a thread\n",
                   threads_.size());
    }
    return;
  }
  try {
    add_thread();
  } catch (...) {
    --active_;  // no thread to be had: the pool carries on as it is
  }
}

void Executor::end_blocking() noexcept {
  std::lock_guard lock(mu_);
  ++active_;
}

std::size_t Executor::stop(std::chrono::milliseconds limit, bool stop_io) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  park_cv_.notify_all();
  pool_->detach();
  work_.reset();
  std::unique_lock lock(mu_);
  if (!exit_cv_.wait_until(lock, deadline, [&]() { return running_ == 0; }) && stop_io) {
    // Work that never ends (a socket still open, a timer): stop the
    // io_context so the idle threads return, and give them a moment.
    io_->stop();
    exit_cv_.wait_for(lock, std::chrono::milliseconds(100), [&]() { return running_ == 0; });
  }
  std::vector<std::thread> joinable;
  std::size_t left = 0;
  for (auto& t : threads_) {
    if (!t->t.joinable()) continue;
    if (t->done)
      joinable.push_back(std::move(t->t));
    else {
      t->t.detach();
      ++left;
    }
  }
  lock.unlock();
  for (auto& t : joinable) t.join();
  return left;
}

}  // namespace troupe::detail
