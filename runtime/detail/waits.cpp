#include "runtime/detail/waits.hpp"

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "runtime/detail/registry.hpp"
#include "runtime/detail/state.hpp"
#include "runtime/errors.hpp"

namespace troupe::detail {

namespace {

struct Edge {
  std::uint64_t target;
  const StateBase* state;
  WaitKind kind;
};

std::mutex mu;
std::unordered_map<std::uint64_t, Edge>& edges() {
  static auto* m = new std::unordered_map<std::uint64_t, Edge>();  // never destroyed: waits at exit
  return *m;
}

const char* verb(WaitKind k) { return k == WaitKind::get ? "blocks in get() on" : "is suspended in co_await on"; }

[[noreturn]] void refuse(std::uint64_t waiter, WaitKind kind, const std::vector<std::pair<std::uint64_t, WaitKind>>& chain) {
  if (chain.empty()) {
    if (kind == WaitKind::get)
      throw UsageError(fmt::format("get() inside {} on the result of its own call would deadlock its mailbox; use "
                                   "co_await in a reentrant actor, or call the method directly",
                                   actor_label(waiter)));
    throw UsageError(fmt::format("co_await inside {} on the result of its own call would deadlock: the actor is not "
                                 "reentrant, so the call cannot run while this method waits (Options::reentrant() "
                                 "lets it, or call the method directly)",
                                 actor_label(waiter)));
  }
  std::string path = fmt::format("{} would wait for a call to {}", actor_label(waiter), actor_label(chain[0].first));
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const auto next = i + 1 < chain.size() ? chain[i + 1].first : waiter;
    path += fmt::format(", which {} a call to {}", verb(chain[i].second), actor_label(next));
  }
  throw UsageError(fmt::format(
      "deadlock refused: {}. Each holds its mailbox while it waits, so none of these calls can run. Let one of them "
      "be reentrant and co_await (Options::reentrant()), or do not call back into an actor that waits for you",
      path));
}

}  // namespace

void begin_wait(std::uint64_t waiter, std::uint64_t target, const StateBase* state, WaitKind kind) {
  if (waiter == 0) return;
  std::lock_guard lock(mu);
  auto& all = edges();
  std::vector<std::pair<std::uint64_t, WaitKind>> chain;
  // target 0: a Ref no actor owes (a Promise): no cycle, but the wait is
  // recorded (shutdown can name and break it).
  for (std::uint64_t at = target; at != 0;) {
    if (at == waiter) refuse(waiter, kind, chain);
    auto it = all.find(at);
    if (it == all.end() || it->second.state->ready() || chain.size() > all.size()) break;
    chain.emplace_back(at, it->second.kind);
    at = it->second.target;
  }
  all[waiter] = Edge{target, state, kind};
}

std::string describe_wait(std::uint64_t waiter) {
  std::lock_guard lock(mu);
  auto it = edges().find(waiter);
  if (it == edges().end()) return {};
  const char* how = it->second.kind == WaitKind::get ? "blocked in get() on" : "suspended in co_await on";
  if (it->second.target == 0) return fmt::format("{} a Ref that no actor owes (a Promise)", how);
  return fmt::format("{} a call to {}", how, actor_label(it->second.target));
}

bool break_wait(std::uint64_t waiter, const std::string& why) {
  StateBase* state = nullptr;
  {
    std::lock_guard lock(mu);
    auto it = edges().find(waiter);
    if (it == edges().end()) return false;
    // The waiter holds a reference while its edge is here; this one keeps the
    // state alive past the lock (completing it runs continuations).
    state = const_cast<StateBase*>(it->second.state);
    state->add_ref();
  }
  state->set_error(std::make_exception_ptr(BrokenRef(why)));
  state->release();
  return true;
}

void end_wait(std::uint64_t waiter) noexcept {
  if (waiter == 0) return;
  std::lock_guard lock(mu);
  edges().erase(waiter);
}

}  // namespace troupe::detail
