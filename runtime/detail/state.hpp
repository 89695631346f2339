#pragma once
// The shared state behind a Ref: an intrusively counted, lock-free one-shot slot.
//
// One allocation per call: a call message derives from State<R>, so the mailbox
// node and the result slot are the same object. Readiness is a futex word (so
// blocking get() costs one syscall only when it really sleeps) and callbacks are
// a lock-free stack closed by a sentinel when the value arrives.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>


namespace troupe::detail {

class PoolHandle;

struct Unit {};
template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, Unit, T>;

/// A continuation registered on a state; runs exactly once, then deletes itself.
struct Callback {
  Callback* next = nullptr;
  virtual void invoke() noexcept = 0;
  virtual ~Callback() = default;
};

template <class F>
struct CallbackImpl final : Callback {
  F fn;
  explicit CallbackImpl(F f) : fn(std::move(f)) {}
  void invoke() noexcept override {
    fn();
    delete this;
  }
};

class StateBase {
 public:
  StateBase(const StateBase&) = delete;
  StateBase& operator=(const StateBase&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  bool unique() const noexcept { return refs_.load(std::memory_order_acquire) == 1; }

  bool ready() const noexcept { return status_.load(std::memory_order_acquire) == kReady; }
  bool has_error() const noexcept { return ready() && error_ != nullptr; }
  /// The error, once ready() (nullptr if it holds a value).
  const std::exception_ptr& error() const noexcept { return error_; }

  /// Blocks until ready. Throws UsageError if called from inside the actor
  /// whose result it waits for (that would deadlock its mailbox).
  void wait() const;
  /// What wait() does first: a producer whose work can run on the waiting
  /// thread does it there (a collective group's queued operations). Nothing
  /// by default.
  virtual void help() const noexcept {}
  /// Blocks up to `timeout`; returns ready().
  bool wait_for(std::chrono::nanoseconds timeout) const;
  /// wait_for, then a TimeoutError naming the actor that owes the result.
  void wait_or_throw(std::chrono::nanoseconds timeout) const;

  /// Runs `fn()` once the state is ready: on the completing thread, or right
  /// here if it already is.
  template <class F>
  void on_ready(F&& fn) {
    add_callback(new CallbackImpl<std::decay_t<F>>(std::forward<F>(fn)));
  }
  void add_callback(Callback* cb) noexcept;

  /// Completes with an error (no-op if already completed by someone else).
  void set_error(std::exception_ptr e) noexcept;
  /// True if nobody has completed this state yet (claims the right to do so).
  bool try_claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }

  /// The actor whose call produces this result (0 for none), for error messages.
  std::uint64_t origin() const noexcept { return origin_; }
  void set_origin(std::uint64_t id) noexcept { origin_ = id; }
  /// Where then() continuations run (the runtime's pool), if known.
  PoolHandle* context() const noexcept { return context_; }
  void set_context(PoolHandle* c) noexcept { context_ = c; }

 protected:
  explicit StateBase(std::uint32_t refs) noexcept : refs_(refs) {}
  virtual ~StateBase() = default;
  virtual void destroy() noexcept { delete this; }
  /// Publishes the result stored by the subclass and runs the callbacks.
  void complete() noexcept;

  std::exception_ptr error_;

 private:
  static constexpr std::uint32_t kPending = 0, kPendingWaiters = 1, kReady = 2;
  static Callback* closed() noexcept { return reinterpret_cast<Callback*>(std::uintptr_t{1}); }

  mutable std::atomic<std::uint32_t> status_{kPending};
  std::atomic<std::uint32_t> refs_;
  std::atomic<bool> claimed_{false};
  std::atomic<Callback*> callbacks_{nullptr};
  std::uint64_t origin_ = 0;
  PoolHandle* context_ = nullptr;
};

template <class T>
class State : public StateBase {
 public:
  using value_type = stored_t<T>;
  explicit State(std::uint32_t refs = 1) noexcept : StateBase(refs) {}

  template <class... A>
  void set_value(A&&... a) {
    if (!try_claim()) return;
    ::new (static_cast<void*>(&storage_)) value_type(std::forward<A>(a)...);
    has_value_ = true;
    complete();
  }
  /// The value; the state must be ready without error.
  value_type& value() noexcept { return *std::launder(reinterpret_cast<value_type*>(&storage_)); }

 protected:
  ~State() override {
    if (has_value_) value().~value_type();
  }

 private:
  alignas(value_type) unsigned char storage_[sizeof(value_type)];
  bool has_value_ = false;
};

/// Intrusive pointer to a state.
template <class S>
class StatePtr {
 public:
  StatePtr() noexcept = default;
  /// Adopts one reference that the caller already holds.
  explicit StatePtr(S* s) noexcept : s_(s) {}
  StatePtr(const StatePtr& o) noexcept : s_(o.s_) {
    if (s_) s_->add_ref();
  }
  StatePtr(StatePtr&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StatePtr& operator=(StatePtr o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~StatePtr() {
    if (s_) s_->release();
  }
  S* get() const noexcept { return s_; }
  S* operator->() const noexcept { return s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }
  S* detach() noexcept { return std::exchange(s_, nullptr); }

 private:
  S* s_ = nullptr;
};

}  // namespace troupe::detail
