#pragma once
// An actor's inbox: a lock-free multi-producer stack drained by one consumer.
//
// Producers push with one CAS; the consumer (the actor's strand) takes the whole
// stack at once and reverses it, so each producer's messages keep their order
// (per-sender FIFO). Two sentinels make the scheduling hand-off race-free:
//   blocked(): empty and nobody draining  -> a push must schedule a drain
//   closed():  the actor is dead           -> a push is refused
// nullptr means empty while a drain is scheduled or running.
#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>

#include "runtime/detail/intrusive.hpp"

namespace troupe::detail {

class CellBase;

/// One queued unit of work for an actor: a call, a stop request.
class Message {
 public:
  Message* next = nullptr;
  /// Delivery attempts so far (restarts may re-deliver a call).
  int attempts = 0;
  /// When it was queued (steady clock, ns), for one call in 8; 0: not sampled.
  std::int64_t queued_ns = 0;
  /// While `troupe trace` records: the flow from its send, and its name
  /// ("Class.method", interned); 0 / null otherwise.
  std::uint64_t trace_flow = 0;
  const char* trace_name = nullptr;
  std::int64_t trace_t0 = 0;  ///< a traced coroutine call that suspended: when it began

  enum class Step { done, suspended };

  virtual ~Message() = default;
  /// Runs against the live actor on its strand. Exceptions other than
  /// ActorFailure are the call's own result; ActorFailure propagates to the cell.
  virtual Step run(CellBase& cell) = 0;
  /// Fails the message (if it has no result yet) and drops the mailbox's reference.
  virtual void fail(std::exception_ptr e) noexcept = 0;
  /// Fails the caller's Ref but keeps the message (a suspended coroutine still runs).
  virtual void abandon(std::exception_ptr e) noexcept = 0;
  /// Drops the mailbox's reference after a suspended call completed.
  virtual void done() noexcept = 0;
  /// True once every Ref argument is resolved.
  virtual bool deps_ready() const noexcept { return true; }
  /// Calls cell->wake() once a pending Ref argument resolves.
  virtual void on_dep_ready(std::shared_ptr<CellBase> cell) noexcept;
  /// True for calls that may be re-delivered after a restart.
  virtual bool retryable() const noexcept { return true; }
  /// True for lifecycle requests (stop) that always survive a restart.
  virtual bool control() const noexcept { return false; }
};

enum class PushResult { queued, queued_must_schedule, closed };

class Inbox {
 public:
  /// `count`: add it to pushed() (troupe top's queue depth, sampled).
  PushResult push(Message* m, bool count = true) noexcept {
    Message* head = head_.load(std::memory_order_acquire);
    for (;;) {
      if (head == closed()) return PushResult::closed;
      m->next = (head == blocked()) ? nullptr : head;
      if (head_.compare_exchange_weak(head, m, std::memory_order_acq_rel, std::memory_order_acquire)) {
        // Beside head_, on the line the exchange just took: no extra miss.
        if (count) pushed_.fetch_add(1, std::memory_order_relaxed);
        return head == blocked() ? PushResult::queued_must_schedule : PushResult::queued;
      }
    }
  }

  /// Consumer: takes everything queued, oldest first. Sets `is_closed` if closed.
  Message* take_all(bool& is_closed) noexcept {
    Message* head = head_.load(std::memory_order_acquire);
    is_closed = false;
    for (;;) {
      if (head == closed()) {
        is_closed = true;
        return nullptr;
      }
      if (head == nullptr || head == blocked()) return nullptr;
      if (head_.compare_exchange_weak(head, nullptr, std::memory_order_acq_rel, std::memory_order_acquire))
        break;
    }
    is_closed = false;
    return reverse_list(head);
  }

  /// Consumer: marks the inbox idle if it is still empty. On false, more
  /// messages arrived (or it was closed) and the consumer must look again.
  bool try_block() noexcept {
    Message* expected = nullptr;
    if (head_.compare_exchange_strong(expected, blocked(), std::memory_order_acq_rel)) return true;
    // A drain not started by a push (the first one at spawn) finds the inbox
    // idle already: that is done too, not a reason to look again.
    return expected == blocked();
  }

  /// Closes the inbox and returns what was queued, oldest first. `was_blocked`
  /// tells whether no drain was scheduled at that moment.
  Message* close(bool& was_blocked) noexcept {
    Message* head = head_.exchange(closed(), std::memory_order_acq_rel);
    was_blocked = head == blocked();
    if (head == closed() || head == blocked()) return nullptr;
    return reverse_list(head);
  }

  bool is_closed() const noexcept { return head_.load(std::memory_order_acquire) == closed(); }

 private:
  static Message* blocked() noexcept { return reinterpret_cast<Message*>(std::uintptr_t{1}); }
  static Message* closed() noexcept { return reinterpret_cast<Message*>(std::uintptr_t{2}); }

  std::atomic<Message*> head_{blocked()};
  std::atomic<std::uint64_t> pushed_{0};  // sampled messages ever queued (troupe top's queue depth)

 public:
  std::uint64_t pushed() const noexcept { return pushed_.load(std::memory_order_relaxed); }
};

/// A FIFO of messages taken from the inbox but not yet run (strand-only).
class MessageQueue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  Message* front() const noexcept { return head_; }
  Message* pop() noexcept {
    Message* m = head_;
    head_ = m->next;
    if (!head_) tail_ = nullptr;
    m->next = nullptr;
    return m;
  }
  void push_front(Message* m) noexcept {
    m->next = head_;
    head_ = m;
    if (!tail_) tail_ = m;
  }
  /// Appends a next-linked FIFO list.
  void append(Message* list) noexcept {
    if (!list) return;
    if (tail_)
      tail_->next = list;
    else
      head_ = list;
    while (list->next) list = list->next;
    tail_ = list;
  }

 private:
  Message* head_ = nullptr;
  Message* tail_ = nullptr;
};

}  // namespace troupe::detail
