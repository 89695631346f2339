#pragma once
// What an actor can learn about itself while one of its methods runs.
#include <cstddef>
#include <cstdint>
#include <string>

namespace troupe {

class Runtime;

/// The running actor's identity and place in its mesh. Valid inside the
/// actor's constructor, on_start/on_stop and methods (including troupe::Task
/// coroutines after any co_await; in asio::awaitable methods, read it before
/// the first co_await).
class ActorContext {
 public:
  virtual ~ActorContext() = default;
  virtual std::uint64_t id() const noexcept = 0;
  virtual const std::string& name() const noexcept = 0;
  /// Rank in the mesh it was spawned in (0 for a lone actor).
  virtual std::size_t rank() const noexcept = 0;
  /// Size of that mesh (1 for a lone actor).
  virtual std::size_t mesh_size() const noexcept = 0;
  virtual Runtime& runtime() const noexcept = 0;
  /// Restarts so far (0 in the first incarnation).
  virtual int restarts() const noexcept = 0;
  /// Options::reentrant(): other calls run while a coroutine method waits.
  virtual bool reentrant() const noexcept = 0;
};

/// The context of the actor running on this thread; throws UsageError outside one.
ActorContext& self();
/// The context of the actor running on this thread, or nullptr.
ActorContext* current_actor() noexcept;
/// Its id, or 0 outside an actor.
std::uint64_t current_actor_id() noexcept;

namespace detail {
/// Sets the current actor for the scope of one run on its strand.
class ContextGuard {
 public:
  explicit ContextGuard(ActorContext* ctx) noexcept;
  ~ContextGuard();
  ContextGuard(const ContextGuard&) = delete;
  ContextGuard& operator=(const ContextGuard&) = delete;

 private:
  ActorContext* saved_;
};
}  // namespace detail

}  // namespace troupe
