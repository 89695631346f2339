#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "runtime/troupe.hpp"
#include "tests/support/eventually.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using troupe::test::eventually;

namespace {

std::atomic<int> constructions{0};

class Flaky {
 public:
  explicit Flaky(int base) : base_(base) { ++constructions; }
  int add(int v) { return base_ += v; }
  int crash(std::string why) { throw ActorFailure(why); }
  // Fails on the first delivery only: a retry after the restart succeeds.
  int crash_once(int v) {
    if (self().restarts() == 0) throw ActorFailure("first incarnation gives up");
    return v * 100;
  }
  int incarnation() const { return self().restarts(); }

 private:
  int base_;
};

struct DownLog {
  std::mutex mu;
  std::vector<DownEvent> events;
  void add(const DownEvent& e) {
    std::lock_guard l(mu);
    events.push_back(e);
  }
  std::size_t size() {
    std::lock_guard l(mu);
    return events.size();
  }
};


}  // namespace

TEST_CASE("monitor reports death with its cause", "[supervision]") {
  Runtime rt({.threads = 2});
  DownLog log;
  auto a = rt.spawn<Flaky>(1, Options{}.name("watched"));
  rt.monitor(a, [&](const DownEvent& e) { log.add(e); });
  CHECK_THROWS_AS(a.call(&Flaky::crash, std::string("disk on fire")).get(), ActorDied);
  eventually([&] { return log.size() == 1; });
  CHECK(log.events[0].cause == DeathCause::failed);
  CHECK(log.events[0].detail == "disk on fire");
  CHECK(log.events[0].name == "watched");
  CHECK_FALSE(log.events[0].restarting);
  // Monitoring an already dead actor reports at once.
  DownLog late;
  rt.monitor(a, [&](const DownEvent& e) { late.add(e); });
  eventually([&] { return late.size() == 1; });
}

TEST_CASE("max_restarts re-creates a failed actor from its constructor arguments", "[supervision]") {
  Runtime rt({.threads = 2});
  DownLog log;
  auto a = rt.spawn<Flaky>(10, Options{}.max_restarts(2));
  rt.monitor(a, [&](const DownEvent& e) { log.add(e); });
  CHECK(a.call(&Flaky::add, 5).get() == 15);
  try {
    a.call(&Flaky::crash, std::string("one")).get();
    FAIL("crash returned");
  } catch (const ActorDied& e) {
    CHECK(e.cause() == DeathCause::failed);
    CHECK(e.detail() == "one");
  }
  // State comes back from the constructor arguments.
  CHECK(a.call(&Flaky::add, 1).get() == 11);
  CHECK(a.call(&Flaky::incarnation).get() == 1);
  CHECK_THROWS_AS(a.call(&Flaky::crash, std::string("two")).get(), ActorDied);
  CHECK(a.call(&Flaky::incarnation).get() == 2);
  CHECK_THROWS_AS(a.call(&Flaky::crash, std::string("three")).get(), ActorDied);
  // Restarts used up: dead for good.
  CHECK_THROWS_AS(a.call(&Flaky::add, 1).get(), ActorDied);
  CHECK_FALSE(a.alive());
  eventually([&] { return log.size() == 3; });
  CHECK(log.events[0].restarting);
  CHECK(log.events[1].restarting);
  CHECK_FALSE(log.events[2].restarting);
}

TEST_CASE("without call retries, calls queued at a failure fail with ActorDied", "[supervision]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Flaky>(0, Options{}.max_restarts(1));
  Promise<std::string> gate;
  auto crash = a.call(&Flaky::crash, gate.ref());  // holds the mailbox until the gate opens
  std::vector<Ref<int>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(a.call(&Flaky::add, 1));
  gate.set_value("boom");
  CHECK_THROWS_AS(crash.get(), ActorDied);
  for (auto& q : queued) CHECK_THROWS_AS(q.get(), ActorDied);
  // The restarted actor serves new calls.
  CHECK(a.call(&Flaky::add, 1).get() == 1);
}

TEST_CASE("with call retries, calls in flight are re-delivered to the restarted actor", "[supervision]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Flaky>(0, Options{}.name("flaky").max_restarts(1).max_call_retries(1));
  Promise<int> gate;
  auto first = a.call(&Flaky::crash_once, gate.ref());
  std::vector<Ref<int>> queued;
  for (int i = 0; i < 10; ++i) queued.push_back(a.call(&Flaky::add, 1));
  gate.set_value(7);
  // The call that raised ActorFailure is not re-delivered: its caller hears
  // that the actor was restarted, not that it is dead.
  try {
    first.get();
    FAIL("the failing call succeeded");
  } catch (const ActorDied& e) {
    CHECK(e.restarted());
    CHECK(e.restart().culprit);
    CHECK(e.detail() == "first incarnation gives up");
    CHECK_THAT(e.what(), Catch::Equals("actor 'flaky' (#" + std::to_string(a.id()) +
                                       ") failed in this call and was restarted (restart 1 of 1): first incarnation "
                                       "gives up"));
  }
  for (std::size_t i = 0; i < queued.size(); ++i) CHECK(queued[i].get() == static_cast<int>(i) + 1);
  CHECK(a.alive());
}

TEST_CASE("a call that raises ActorFailure spends one restart, however many retries calls have", "[supervision]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Flaky>(0, Options{}.max_restarts(2).max_call_retries(-1));
  a.call(&Flaky::add, 0).get();  // constructed
  int before = constructions;
  try {
    a.call(&Flaky::crash, std::string("poison")).get(5s);
    FAIL("poison call succeeded");
  } catch (const ActorDied& e) {
    CHECK(e.detail() == "poison");
    CHECK(e.restarted());
  }
  CHECK(a.call(&Flaky::add, 2).get() == 2);  // served by a fresh incarnation
  CHECK(a.call(&Flaky::incarnation).get() == 1);
  CHECK(constructions - before == 1);  // one delivery, one failure, one restart
}

TEST_CASE("calls failed by a restart say the actor was restarted; by its death that it is dead", "[supervision]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Flaky>(0, Options{}.max_restarts(1));
  Promise<std::string> gate;
  auto crash = a.call(&Flaky::crash, gate.ref());
  auto queued = a.call(&Flaky::add, 1);
  gate.set_value("boom");
  CHECK_THROWS_WITH(crash.get(), Catch::Contains("failed in this call and was restarted (restart 1 of 1): boom"));
  CHECK_THROWS_WITH(queued.get(), Catch::Contains("failed and was restarted (restart 1 of 1); this call was in flight "
                                                  "and is not retried: boom"));
  // The restart budget spent, the next failure is a death.
  CHECK_THROWS_WITH(a.call(&Flaky::crash, std::string("again")).get(),
                    Catch::Contains("is dead: failed: again (its 1 restart used up)"));
  CHECK_FALSE(a.alive());
}
