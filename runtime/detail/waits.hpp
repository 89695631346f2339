#pragma once
// Waits-for edges between the actors of this process, for refusing a wait
// that can never end.
//
// An actor holds its mailbox while it waits in a blocking get(), and while a
// non-reentrant actor's coroutine method is suspended in co_await: calls to it
// queue until the wait ends. If the call it waits for is owed by an actor that
// (directly or through others) waits for it in the same way, none of them can
// go on. begin_wait records the edge, or throws UsageError naming every actor
// of the cycle when the edge would close one. Edges whose call has completed
// do not count (their waiter is about to go on).
#include <cstdint>
#include <string>

namespace troupe::detail {

class StateBase;

enum class WaitKind { get, await };

/// `waiter` (an actor holding its mailbox) waits for `state`, the result of a
/// call to actor `target`. Throws UsageError if that closes a cycle.
void begin_wait(std::uint64_t waiter, std::uint64_t target, const StateBase* state, WaitKind kind);
/// The wait of `waiter` ended (its state completed, or it gave up).
void end_wait(std::uint64_t waiter) noexcept;
/// What `waiter` waits for now ("blocked in get() on a call to actor 'b'
/// (#3, B)"), or "" if nothing.
std::string describe_wait(std::uint64_t waiter);
/// Fails the call `waiter` waits for with BrokenRef(`why`), so its get()
/// returns (runtime shutdown). False if it waits for nothing.
bool break_wait(std::uint64_t waiter, const std::string& why);

/// begin_wait for a blocking wait's scope; end_wait when it is left.
class WaitScope {
 public:
  WaitScope(std::uint64_t waiter, std::uint64_t target, const StateBase* state, WaitKind kind) : waiter_(waiter) {
    begin_wait(waiter, target, state, kind);
  }
  ~WaitScope() { end_wait(waiter_); }
  WaitScope(const WaitScope&) = delete;
  WaitScope& operator=(const WaitScope&) = delete;

 private:
  std::uint64_t waiter_;
};

}  // namespace troupe::detail
