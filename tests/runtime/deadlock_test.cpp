// Waits a user can write that could never end are refused with a UsageError
// naming the actors, instead of hanging: an actor awaiting its own call, and
// cycles of actors that wait (get(), or co_await when not reentrant) for
// each other. Reentrant actors, and waits that are no cycle, still work.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>

#include "runtime/troupe.hpp"

using namespace std::chrono_literals;
using namespace troupe;

namespace {

// The README's Counter, as a newcomer first writes it: add_twice awaits its
// own actor.
class Counter {
 public:
  explicit Counter(int start) : value_(start) {}
  int add(int n) { return value_ += n; }
  Task<int> add_twice(int n) {
    co_await self_ref<Counter>().call(&Counter::add, n);
    co_return value_ += n;
  }

 private:
  int value_;
};

// A and B call each other: `ask` waits on the peer's `answer`, which waits
// back on `leaf` of the asker.
class Peer {
 public:
  void link(ActorRef<Peer> other) { other_ = std::move(other); }
  int leaf() { return 1; }
  int answer_get() { return other_->call(&Peer::leaf).get() + 1; }
  Task<int> answer_await() { co_return co_await other_->call(&Peer::leaf) + 1; }
  Ref<int> answer_of_peer(bool peer_awaits) {
    return peer_awaits ? other_->call(&Peer::answer_await) : other_->call(&Peer::answer_get);
  }
  int ask_get(bool peer_awaits) { return answer_of_peer(peer_awaits).get(10s) + 1; }
  // (The Ref is a named local: GCC 12 destroys a temporary from a ?: inside
  // a co_await expression twice.)
  Task<int> ask_await(bool peer_awaits) {
    Ref<int> answer = answer_of_peer(peer_awaits);
    co_return co_await answer + 1;
  }

 private:
  std::optional<ActorRef<Peer>> other_;
};

}  // namespace

TEST_CASE("a non-reentrant actor that co_awaits its own call is refused, naming it", "[deadlock]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>(10, Options{}.name("c"));
  try {
    c.call(&Counter::add_twice, 1).get(10s);
    FAIL("add_twice returned");
  } catch (const UsageError& e) {
    CHECK_THAT(e.what(), Catch::Contains("co_await inside actor 'c'") &&
                             Catch::Contains("on the result of its own call would deadlock") &&
                             Catch::Contains("Options::reentrant()"));
  }
  // The actor serves on: the refused wait did not hold its mailbox, and the
  // call it made (add 1) ran after it, as calls do.
  CHECK(c.call(&Counter::add, 1).get(10s) == 12);
  // Reentrant, the same method works: the call runs while add_twice waits.
  auto r = rt.spawn<Counter>(10, Options{}.name("r").reentrant());
  CHECK(r.call(&Counter::add_twice, 1).get(10s) == 12);
}

TEST_CASE("two actors that wait for each other are refused at the wait that closes the cycle", "[deadlock]") {
  Runtime rt({.threads = 4});
  auto a = rt.spawn<Peer>(Options{}.name("a"));
  auto b = rt.spawn<Peer>(Options{}.name("b"));
  a.call(&Peer::link, b).get();
  b.call(&Peer::link, a).get();
  // Whichever of the two waits comes second is refused (either may: a's call
  // to b starts b at once), and a's call fails with that UsageError.
  auto refusal = [&](Ref<int> r) {
    try {
      r.get(10s);
    } catch (const UsageError& e) {
      const std::string what = e.what();
      CHECK_THAT(what, Catch::StartsWith("deadlock refused: actor '"));
      CHECK_THAT(what, Catch::Contains("would wait for a call to actor '"));
      CHECK_THAT(what, Catch::Contains("(#" + std::to_string(a.id())));
      CHECK_THAT(what, Catch::Contains("(#" + std::to_string(b.id())));
      CHECK_THAT(what, Catch::Contains("none of these calls can run"));
      return what;
    }
    FAIL("the cycle was not refused");
    return std::string();
  };
  SECTION("get() both ways") {
    CHECK_THAT(refusal(a.call(&Peer::ask_get, false)), Catch::Contains("blocks in get() on"));
  }
  SECTION("co_await on one side, get() on the other") { refusal(a.call(&Peer::ask_await, false)); }
  SECTION("co_await both ways") {
    CHECK_THAT(refusal(a.call(&Peer::ask_await, true)), Catch::Contains("is suspended in co_await on"));
  }
  // After each, both actors serve again.
  CHECK(a.call(&Peer::leaf).get(10s) == 1);
  CHECK(b.call(&Peer::leaf).get(10s) == 1);
}

TEST_CASE("a reentrant actor awaiting its caller is no cycle, and chains without one still run", "[deadlock]") {
  Runtime rt({.threads = 4});
  auto a = rt.spawn<Peer>(Options{}.name("a").reentrant());
  auto b = rt.spawn<Peer>(Options{}.name("b"));
  a.call(&Peer::link, b).get();
  b.call(&Peer::link, a).get();
  // a co_awaits b; b's answer co_awaits a's leaf, which runs while a waits.
  CHECK(a.call(&Peer::ask_await, true).get(10s) == 3);
  // b blocks in get() on a (reentrant or not, a's leaf needs no one).
  CHECK(b.call(&Peer::answer_get).get(10s) == 2);
}
