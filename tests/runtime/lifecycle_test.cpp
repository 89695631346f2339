#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <unistd.h>

#include "runtime/troupe.hpp"
#include "tests/support/eventually.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using troupe::test::eventually;

namespace {

struct Events {
  std::atomic<int> started{0}, stopped{0}, destroyed{0};
};

class Tracked {
 public:
  explicit Tracked(Events* ev) : ev_(ev) {}
  ~Tracked() { ++ev_->destroyed; }
  void on_start() { ++ev_->started; }
  void on_stop() { ++ev_->stopped; }
  int echo(int v) { return v; }
  int slow(int v) {
    std::this_thread::sleep_for(30ms);
    return v;
  }
  bool was_started() const { return ev_->started == 1; }

 private:
  Events* ev_;
};


}  // namespace

TEST_CASE("on_start runs before the first call; stop runs on_stop", "[lifecycle]") {
  Events ev;
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Tracked>(&ev);
  CHECK(a.call(&Tracked::was_started).get());
  CHECK(a.alive());
  a.stop().get();
  CHECK_FALSE(a.alive());
  CHECK(ev.stopped == 1);
  CHECK(ev.destroyed == 1);
}

TEST_CASE("stop lets earlier calls finish; later calls fail with ActorDied", "[lifecycle]") {
  Events ev;
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Tracked>(&ev, Options{}.name("worker"));
  auto before = a.call(&Tracked::slow, 1);
  auto stopped = a.stop();
  auto after = a.call(&Tracked::echo, 2);
  CHECK(before.get() == 1);
  stopped.get();
  try {
    after.get();
    FAIL("call after stop() succeeded");
  } catch (const ActorDied& e) {
    CHECK(e.cause() == DeathCause::stopped);
    CHECK(e.actor_name() == "worker");
    CHECK_THAT(e.what(), Catch::Contains("actor 'worker'") && Catch::Contains("stopped"));
  }
  CHECK_THROWS_AS(a.call(&Tracked::echo, 3).get(), ActorDied);
  a.stop().get();  // stopping twice is harmless
}

TEST_CASE("kill fails queued calls at once and skips on_stop", "[lifecycle]") {
  Events ev;
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Tracked>(&ev);
  REQUIRE(a.call(&Tracked::echo, 0).get() == 0);  // constructed and started
  auto running = a.call(&Tracked::slow, 1);
  std::vector<Ref<int>> queued;
  for (int i = 0; i < 50; ++i) queued.push_back(a.call(&Tracked::slow, i));
  a.kill();
  for (auto& q : queued) {
    try {
      q.get(2s);
    } catch (const ActorDied& e) {
      CHECK(e.cause() == DeathCause::killed);
    }
  }
  CHECK(running.wait_for(2s));
  CHECK_THROWS_AS(a.call(&Tracked::echo, 1).get(2s), ActorDied);
  eventually([&] { return ev.destroyed == 1; });
  CHECK(ev.stopped == 0);
}

TEST_CASE("a constructor that throws kills the actor with the reason", "[lifecycle]") {
  struct Broken {
    Broken() { throw std::runtime_error("config file missing"); }
    int ping() { return 1; }
  };
  Runtime rt({.threads = 2});
  auto b = rt.spawn<Broken>(Options{}.name("broken"));
  try {
    b.call(&Broken::ping).get(2s);
    FAIL("call to a broken actor succeeded");
  } catch (const ActorDied& e) {
    CHECK(e.cause() == DeathCause::failed);
    CHECK_THAT(e.detail(), Catch::Contains("config file missing"));
  }
  // The handle says why too, for whoever meets the dead actor later (a
  // collective group made of it names the cause, not only the death).
  eventually([&]() { return !b.death().empty(); });
  CHECK_THAT(b.death(), Catch::Contains("actor 'broken'") && Catch::Contains("config file missing"));
  struct Fine {
    int ping() { return 1; }
  };
  auto fine = rt.spawn<Fine>();
  CHECK(fine.call(&Fine::ping).get(2s) == 1);
  CHECK(fine.death().empty());
}

TEST_CASE("runtime shutdown fails pending work instead of hanging", "[lifecycle]") {
  Events ev;
  Ref<int> pending;
  Promise<int> never;
  {
    Runtime rt({.threads = 2});
    auto a = rt.spawn<Tracked>(&ev);
    auto b = rt.spawn<Tracked>(&ev);
    (void)a.call(&Tracked::slow, 1);
    pending = b.call(&Tracked::echo, never.ref());  // blocked on an unresolved argument
    CHECK(rt.live_actors() == 2);
  }
  try {
    pending.get(2s);
    FAIL("pending call completed");
  } catch (const ActorDied& e) {
    CHECK(e.cause() == DeathCause::runtime_shutdown);
  }
  CHECK(ev.destroyed == 2);
}

TEST_CASE("spawn after shutdown is refused", "[lifecycle]") {
  Events ev;
  Runtime rt({.threads = 1});
  rt.shutdown();
  CHECK_THROWS_AS(rt.spawn<Tracked>(&ev), UsageError);
}

TEST_CASE("a driver task awaiting an actor killed by shutdown still finishes", "[lifecycle]") {
  Events ev;
  Promise<int> never;
  Ref<int> outcome;
  {
    Runtime rt({.threads = 2});
    auto a = rt.spawn<Tracked>(&ev);
    auto driver = [](ActorRef<Tracked> t, Ref<int> arg) -> Task<int> {
      try {
        co_return co_await t.call(&Tracked::echo, arg);
      } catch (const ActorDied& e) {
        co_return e.cause() == DeathCause::runtime_shutdown ? -1 : -2;
      }
    };
    outcome = rt.start(driver(a, never.ref()));
  }
  CHECK(outcome.get(2s) == -1);
}

namespace {

// Collects what this process writes to stderr while it lives.
class StderrCapture {
 public:
  StderrCapture() {
    std::fflush(stderr);
    file_ = std::tmpfile();
    saved_ = ::dup(2);
    ::dup2(::fileno(file_), 2);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    std::rewind(file_);
    std::string out;
    char buf[512];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, file_)) out.append(buf, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::FILE* file_ = nullptr;
  int saved_ = -1;
};

struct Stuck {
  std::atomic<bool> inside{false}, release{false};
};

// Holds its Stuck: a thread left running past shutdown still reads it.
class Blocker {
 public:
  explicit Blocker(std::shared_ptr<Stuck> s) : s_(std::move(s)) {}
  // A method that does not return until the test says so (a bounded loop).
  int loop() {
    s_->inside = true;
    for (int i = 0; i < 60000 && !s_->release.load(); ++i) std::this_thread::sleep_for(1ms);
    return 1;
  }
  // A get() on a Promise nobody keeps.
  int wait_forever(std::shared_ptr<Promise<int>> p) {
    s_->inside = true;
    return p->ref().get();
  }

 private:
  std::shared_ptr<Stuck> s_;
};

}  // namespace

TEST_CASE("shutdown breaks a get() that would never end, and the actor's call fails with why", "[lifecycle]") {
  auto s = std::make_shared<Stuck>();
  auto never = std::make_shared<Promise<int>>();
  Ref<int> call;
  StderrCapture err;
  {
    Runtime rt({.threads = 2, .shutdown_timeout = 2s});
    auto b = rt.spawn<Blocker>(s, Options{}.name("waits"));
    call = b.call(&Blocker::wait_forever, never);
    eventually([&]() { return s->inside.load(); });
  }  // ~Runtime: returns once the broken wait lets the method end
  CHECK_THROWS_AS(call.get(2s), BrokenRef);
  CHECK_THROWS_WITH(call.get(2s), Catch::Contains("the runtime is shutting down"));
  CHECK_THAT(err.text(), !Catch::Contains("gave up"));
}

TEST_CASE("shutdown is bounded: an actor stuck in a method is named, and its thread left to finish", "[lifecycle]") {
  auto s = std::make_shared<Stuck>();
  StderrCapture err;
  {
    Runtime rt({.threads = 2, .shutdown_timeout = 300ms});
    auto b = rt.spawn<Blocker>(s, Options{}.name("looper"));
    (void)b.call(&Blocker::loop);
    eventually([&]() { return s->inside.load(); });
  }  // returns although loop() has not
  const std::string text = err.text();
  CHECK_THAT(text, Catch::Contains("Runtime shutdown gave up after 300 ms"));
  CHECK_THAT(text, Catch::Contains("actor 'looper'") && Catch::Contains("inside a method"));
  s->release = true;  // the abandoned thread finishes, and exits with the pool it holds
}
