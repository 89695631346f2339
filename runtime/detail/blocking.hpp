#pragma once
// A pool thread about to block (a get() that has to sleep) tells its pool, so
// the pool can start another thread while this one waits: calls the blocked
// ones wait for still find a thread (runtime/detail/executor.cpp). Threads
// that are not the pool's have no hook.
namespace troupe::detail {

class BlockingHook {
 public:
  virtual void begin_blocking() noexcept = 0;
  virtual void end_blocking() noexcept = 0;

 protected:
  ~BlockingHook() = default;
};

/// The hook of the pool this thread belongs to, or null.
BlockingHook* blocking_hook() noexcept;
void set_blocking_hook(BlockingHook* h) noexcept;

/// begin_blocking / end_blocking around a scope, when the thread has a hook.
class BlockingScope {
 public:
  BlockingScope() noexcept : hook_(blocking_hook()) {
    if (hook_) hook_->begin_blocking();
  }
  ~BlockingScope() {
    if (hook_) hook_->end_blocking();
  }
  BlockingScope(const BlockingScope&) = delete;
  BlockingScope& operator=(const BlockingScope&) = delete;

 private:
  BlockingHook* hook_;
};

}  // namespace troupe::detail
