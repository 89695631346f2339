#include "actors/compute/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace troupe::compute::detail {

namespace {

constexpr auto kSpin = std::chrono::microseconds(200);

// Workers spin briefly for the next loop (steps issue them back to back),
// then sleep on a condition variable.
class Pool {
 public:

  // Read by any thread (parallel_for sizes its parts); resize changes it.
  int threads() const { return size_.load(std::memory_order_acquire); }

  void resize(int n) {
    std::lock_guard use(use_);
    if (n == size_.load(std::memory_order_relaxed)) return;  // several stages of one process set the same
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    // A worker starts from the current generation: a loop issued before its
    // thread runs is still one it takes part in.
    const std::uint64_t start = gen_.load(std::memory_order_acquire);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, start]() { loop(i, start); });
    size_.store(n, std::memory_order_release);
  }

  // False when another loop holds the pool: the caller runs alone.
  bool run(int parts, const std::function<void(int)>& part) {
    std::unique_lock use(use_, std::try_to_lock);
    if (!use.owns_lock()) return false;
    parts = std::min(parts, threads());
    {
      std::lock_guard lock(mu_);
      job_ = &part;
      parts_ = parts;
      pending_.store(parts - 1, std::memory_order_relaxed);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    part(0);
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins)
      if ((spins & 63) == 63 && std::chrono::steady_clock::now() > until) std::this_thread::yield();
    return true;
  }

 private:
  void loop(int index, std::uint64_t seen) {
    for (;;) {
      // The next loop of a step usually comes within microseconds; sleeping
      // and being woken costs more than that, so wait a while awake.
      const auto until = std::chrono::steady_clock::now() + kSpin;
      for (int spins = 0; gen_.load(std::memory_order_acquire) == seen; ++spins)
        if ((spins & 63) == 63 && std::chrono::steady_clock::now() > until) break;
      const std::function<void(int)>* job = nullptr;
      int parts = 0;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&]() { return gen_.load(std::memory_order_acquire) != seen; });
        seen = gen_.load(std::memory_order_acquire);
        if (stop_) return;
        job = job_;
        parts = parts_;
      }
      if (index < parts) {
        (*job)(index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::mutex use_;  // one loop at a time
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::atomic<int> size_{1};  // workers_ + the caller
  std::atomic<std::uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* job_ = nullptr;
  int parts_ = 0;
  bool stop_ = false;
};

// As many threads as OpenBLAS starts with (one per core) until set_num_threads.
Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();
    q->resize(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    return q;
  }();
  return *p;
}

}  // namespace

void set_pool_threads(int n) {
  if (pool().threads() != n) pool().resize(n);  // resize checks again, holding the pool
}

void parallel_for(std::int64_t n, std::int64_t grain, const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  const int threads = pool().threads();
  const auto parts = static_cast<int>(std::clamp<std::int64_t>(n / std::max<std::int64_t>(grain, 1), 1, threads));
  if (parts <= 1) return fn(0, n);
  const std::int64_t chunk = (n + parts - 1) / parts;
  std::function<void(int)> part = [&](int i) {
    const std::int64_t b = i * chunk, e = std::min(n, b + chunk);
    if (b < e) fn(b, e);
  };
  if (!pool().run(parts, part)) fn(0, n);
}

}  // namespace troupe::compute::detail
