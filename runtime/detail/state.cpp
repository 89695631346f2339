#include "runtime/detail/state.hpp"

#include <linux/futex.h>
#include <sched.h>

#include <chrono>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

#include <fmt/format.h>

#include "runtime/context.hpp"
#include "runtime/errors.hpp"
#include "runtime/detail/intrusive.hpp"
#include "runtime/detail/registry.hpp"
#include "runtime/detail/blocking.hpp"
#include "runtime/detail/waits.hpp"

namespace troupe::detail {
namespace {

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t val, const timespec* ts) {
  static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, val, ts, nullptr, 0);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spinning briefly before sleeping makes a synchronous call-and-get round trip
// cost one futex wake less; the bound keeps an idle waiter from burning a core.
constexpr int kPauseIterations = 256;
constexpr auto kYieldFor = std::chrono::microseconds(100);

}  // namespace

void StateBase::add_callback(Callback* cb) noexcept {
  Callback* head = callbacks_.load(std::memory_order_acquire);
  do {
    if (head == closed()) {
      cb->invoke();
      return;
    }
    cb->next = head;
  } while (!callbacks_.compare_exchange_weak(head, cb, std::memory_order_acq_rel,
                                             std::memory_order_acquire));
}

void StateBase::complete() noexcept {
  if (status_.exchange(kReady, std::memory_order_acq_rel) == kPendingWaiters)
    futex(&status_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
  // The stack is newest-first; run continuations in registration order.
  Callback* fifo = reverse_list(callbacks_.exchange(closed(), std::memory_order_acq_rel));
  while (fifo) {
    Callback* next = fifo->next;
    fifo->invoke();
    fifo = next;
  }
}

void StateBase::set_error(std::exception_ptr e) noexcept {
  if (!try_claim()) return;
  error_ = std::move(e);
  complete();
}

void StateBase::wait() const {
  if (ready()) return;
  // An actor waiting here holds its mailbox: refuse a wait that closes a cycle.
  WaitScope scope(current_actor_id(), origin_, this, WaitKind::get);
  help();
  if (ready()) return;
  // Pause first; then yield for a bounded time, so a waiter never keeps the
  // thread that will complete this Ref off a core (more busy threads than
  // cores is common: collectives, process actors on a small machine).
  for (int i = 0; i < kPauseIterations; ++i) {
    if (ready()) return;
    cpu_relax();
  }
  const auto until = std::chrono::steady_clock::now() + kYieldFor;
  while (std::chrono::steady_clock::now() < until) {
    if (ready()) return;
    sched_yield();
  }
  // Going to sleep: a pool thread tells its pool, which keeps another
  // thread running meanwhile (the call this waits for may need one).
  BlockingScope blocking;
  for (;;) {
    std::uint32_t s = status_.load(std::memory_order_acquire);
    if (s == kReady) return;
    if (s == kPending && !status_.compare_exchange_strong(s, kPendingWaiters)) continue;
    futex(&status_, FUTEX_WAIT_PRIVATE, kPendingWaiters, nullptr);
  }
}

bool StateBase::wait_for(std::chrono::nanoseconds timeout) const {
  if (ready()) return true;
  WaitScope scope(current_actor_id(), origin_, this, WaitKind::get);
  BlockingScope blocking;
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  for (;;) {
    std::uint32_t s = status_.load(std::memory_order_acquire);
    if (s == kReady) return true;
    auto left = deadline - clock::now();
    if (left <= std::chrono::nanoseconds::zero()) return false;
    if (s == kPending && !status_.compare_exchange_strong(s, kPendingWaiters)) continue;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    futex(&status_, FUTEX_WAIT_PRIVATE, kPendingWaiters, &ts);
  }
}

void StateBase::wait_or_throw(std::chrono::nanoseconds timeout) const {
  if (wait_for(timeout)) return;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  if (origin_ != 0)
    throw TimeoutError(fmt::format("Ref::get timed out after {} ms waiting for a call to {}", ms,
                                   actor_label(origin_)));
  throw TimeoutError(fmt::format("Ref::get timed out after {} ms", ms));
}

}  // namespace troupe::detail
