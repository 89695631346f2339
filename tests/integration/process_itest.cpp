// Process actors: each runs in a worker process re-run from this binary;
// calls cross a socket; kill -9, failures and restarts are real.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "runtime/cluster/client.hpp"
#include "runtime/device.hpp"
#include "runtime/remote/extension.hpp"
#include "runtime/troupe.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/process.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using troupe::test::eventually;

namespace {

struct Stats {
  double mean = 0;
  std::size_t n = 0;
  TROUPE_FIELDS(mean, n)
};

class Accumulator {
 public:
  explicit Accumulator(double start) : total_(start) {}
  double add(double v) { return total_ += v; }
  Stats stats(const std::vector<double>& xs) const {
    Stats s;
    s.n = xs.size();
    for (double x : xs) s.mean += x / static_cast<double>(xs.size());
    return s;
  }
  int pid() const { return static_cast<int>(::getpid()); }
  std::string where() const { return fmt::format("{}#{}", self().name(), self().rank()); }
  int fail(std::string why) { throw std::invalid_argument(why); }
  int crash(std::string why) { throw ActorFailure(why); }
  int restarts() const { return self().restarts(); }
  Task<double> later(double v) {
    co_await Ref<int>::from_value(0);
    co_return total_ + v;
  }
  void not_listed() {}
  void noted(std::int64_t step) { note_step(step, 0.5, 0.25); }

 private:
  double total_;
};

TROUPE_ACTOR(Accumulator, add, stats, pid, where, fail, crash, restarts, later, noted);

// Holds and uses actor handles it was given.
class Relay {
 public:
  Task<double> ask(ActorRef<Accumulator> acc, double v) { co_return co_await acc.call(&Accumulator::add, v); }
  Task<int> whose(ActorRef<Accumulator> acc) { co_return co_await acc.call(&Accumulator::pid); }
  ActorRef<Accumulator> echo(ActorRef<Accumulator> acc) { return acc; }
  std::string stop_it(ActorRef<Accumulator> acc) {
    try {
      acc.kill();
      return "killed";
    } catch (const UsageError& e) {
      return e.what();
    }
  }
};
TROUPE_ACTOR(Relay, ask, whose, echo, stop_it);


}  // namespace

TEST_CASE("without retries the call that crashed a worker fails; the restarted worker serves", "[process]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(1.0, Options{}.process().max_restarts(1));
  CHECK_THROWS_WITH(a.call(&Accumulator::crash, std::string("bad batch")).get(10s), Catch::Contains("bad batch"));
  CHECK(a.call(&Accumulator::add, 1.0).get(10s) == 2.0);
}

TEST_CASE("a process actor runs in its own process and answers calls", "[process]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(1.5, Options{}.process().name("acc"));
  CHECK(a.call(&Accumulator::add, 2.0).get(10s) == 3.5);
  int pid = a.call(&Accumulator::pid).get(10s);
  CHECK(pid != ::getpid());
  CHECK(a.call(&Accumulator::where).get(10s) == "acc#0");
  auto s = a.call(&Accumulator::stats, std::vector<double>{1, 2, 3, 6}).get(10s);
  CHECK(s.n == 4);
  CHECK(s.mean == 3.0);
  CHECK(a.call(&Accumulator::later, 1.0).get(10s) == 4.5);  // coroutine methods too
}

TEST_CASE("the steps a process actor notes reach its driver while it runs", "[process]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(0.0, Options{}.process());
  CHECK(a.progress().steps == 0);
  a.call(&Accumulator::noted, 11).get(10s);
  a.call(&Accumulator::noted, 12).get(10s);
  // Its worker tells the driver (every 50 ms while the steps move).
  eventually([&] { return a.progress().steps == 2; });
  const auto p = a.progress();
  CHECK(p.step == 12);
  CHECK(p.compute_s == Approx(1.0));
  CHECK(p.wait_s == Approx(0.5));
}

TEST_CASE("process calls keep per-sender order and resolve Ref arguments first", "[process]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(0.0, Options{}.process());
  Promise<double> later;
  auto first = a.call(&Accumulator::add, later.ref());
  std::vector<Ref<double>> rest;
  for (int i = 1; i <= 200; ++i) rest.push_back(a.call(&Accumulator::add, 1.0));
  CHECK_FALSE(rest.front().wait_for(50ms));
  later.set_value(1000.0);
  CHECK(first.get(10s) == 1000.0);
  for (int i = 0; i < 200; ++i) CHECK(rest[i].get(10s) == 1001.0 + i);
}

TEST_CASE("actor handles passed to a process actor call the real actor through the driver", "[process]") {
  Runtime rt({.threads = 2});
  auto relay = rt.spawn<Relay>(Options{}.process());
  auto local = rt.spawn<Accumulator>(10.0);                        // in the driver
  auto other = rt.spawn<Accumulator>(100.0, Options{}.process());  // in another worker
  CHECK(relay.call(&Relay::ask, local, 1.0).get(10s) == 11.0);
  CHECK(local.call(&Accumulator::add, 0.0).get(10s) == 11.0);  // the driver's actor really changed
  CHECK(relay.call(&Relay::ask, other, 2.0).get(10s) == 102.0);
  CHECK(relay.call(&Relay::whose, other).get(10s) == other.call(&Accumulator::pid).get(10s));
  // A handle that comes back is the driver's own handle again.
  CHECK(relay.call(&Relay::echo, other).get(10s) == other);
  CHECK(relay.call(&Relay::echo, local).get(10s) == local);
  // Only the owner may stop or kill; the worker is told so.
  CHECK_THAT(relay.call(&Relay::stop_it, other).get(10s), Catch::Contains("only the actor's owner"));
  CHECK(other.alive());
  // A method error of the real actor reaches the worker (and its caller) as a RemoteError.
  other.kill();
  CHECK_THROWS_WITH(relay.call(&Relay::ask, other, 1.0).get(10s), Catch::Contains("ActorDied"));
}

TEST_CASE("junk sent to the driver's worker listener is dropped; real workers still attach", "[process][fuzz]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(1.0, Options{}.process());
  REQUIRE(a.call(&Accumulator::add, 1.0).get(10s) == 2.0);
  const std::string where = remote::cluster_of(rt).driver_address();
  const auto colon = where.rfind(':');
  const auto port = static_cast<unsigned short>(std::stoi(where.substr(colon + 1)));
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    s.connect({boost::asio::ip::make_address(where.substr(0, colon)), port});
    std::vector<std::uint8_t> junk(i == 0 ? 8 : rng() % 300);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    if (i == 0) junk = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};  // a 32 GiB frame
    boost::system::error_code ec;
    boost::asio::write(s, boost::asio::buffer(junk), ec);
    s.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
    std::array<char, 64> buf;
    while (!ec) s.read_some(boost::asio::buffer(buf), ec);  // the driver hangs up
  }
  CHECK(a.call(&Accumulator::add, 1.0).get(10s) == 3.0);
  // The driver keeps placing and serving after the hostile peers.
  auto b = rt.spawn<Accumulator>(5.0, Options{}.process());
  CHECK(b.call(&Accumulator::add, 1.0).get(10s) == 6.0);
}

TEST_CASE("a method's exception crosses the process boundary with type and message", "[process]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(0.0, Options{}.process());
  try {
    a.call(&Accumulator::fail, std::string("bad shard 7")).get(10s);
    FAIL("no exception");
  } catch (const RemoteError& e) {
    CHECK(e.type() == "std::invalid_argument");
    CHECK(e.message() == "bad shard 7");
  }
  CHECK(a.call(&Accumulator::add, 1.0).get(10s) == 1.0);  // still alive
  // A method missing from TROUPE_ACTOR: the error names its type and what is listed.
  CHECK_THROWS_WITH(a.call(&Accumulator::not_listed).get(10s),
                    Catch::Contains("the method void ((anonymous namespace)::Accumulator::*)()") &&
                        Catch::Contains("is not listed in TROUPE_ACTOR((anonymous namespace)::Accumulator, add, stats, "
                                        "pid, where, fail, crash, restarts, later, noted)"));
}

TEST_CASE("a get() that times out on a process actor's call names the actor", "[process]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(0.0, Options{}.name("slow").process());
  Promise<double> gate;  // the call waits for its argument, so its result cannot come in time
  auto r = a.call(&Accumulator::add, gate.ref());
  CHECK_THROWS_WITH(r.get(5ms), Catch::Contains("timed out after 5 ms waiting for a call to actor 'slow'") &&
                                    Catch::Contains("[process]"));
  gate.set_value(2.0);
  CHECK(r.get(10s) == 2.0);
}

TEST_CASE("kill -9 of a worker fails calls with ActorDied naming the signal", "[process]") {
  Runtime rt({.threads = 2});
  std::mutex mu;
  std::vector<DownEvent> events;
  auto a = rt.spawn<Accumulator>(0.0, Options{}.process().name("victim"));
  rt.monitor(a, [&](const DownEvent& e) {
    std::lock_guard l(mu);
    events.push_back(e);
  });
  int pid = a.call(&Accumulator::pid).get(10s);
  ::kill(pid, SIGKILL);
  try {
    for (int i = 0; i < 1000; ++i) a.call(&Accumulator::add, 1.0).get(10s);
    FAIL("calls kept succeeding");
  } catch (const ActorDied& e) {
    CHECK(e.cause() == DeathCause::failed);
    CHECK_THAT(e.detail(), Catch::Contains("killed by signal 9"));
    CHECK(e.actor_name() == "victim");
  }
  CHECK_FALSE(a.alive());
  eventually([&] {
    std::lock_guard l(mu);
    return events.size() == 1;
  });
  CHECK_FALSE(events[0].restarting);
}

TEST_CASE("max_restarts re-creates a crashed worker; retries re-send calls in flight", "[process]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(10.0, Options{}.process().max_restarts(4).max_call_retries(1));
  int pid1 = a.call(&Accumulator::pid).get(10s);
  ::kill(pid1, SIGKILL);
  // The next call lands on a new worker built from the constructor arguments.
  CHECK(a.call(&Accumulator::add, 1.0).get(10s) == 11.0);
  int pid2 = a.call(&Accumulator::pid).get(10s);
  CHECK(pid2 != pid1);
  // ActorFailure inside the worker: the process exits and is restarted. The
  // worker names the call that raised it, so that call is not retried (it
  // would crash the next worker too, spending the restart budget): it fails
  // with the reason, and says the actor was restarted.
  try {
    a.call(&Accumulator::crash, std::string("corrupt state")).get(10s);
    FAIL("crash returned");
  } catch (const ActorDied& e) {
    CHECK_THAT(e.detail(), Catch::Contains("corrupt state") && Catch::Contains("exited with code 3"));
    CHECK(e.restarted());
    CHECK(e.restart().culprit);
    CHECK(e.restart().number == 2);  // the kill above was the first
    CHECK_THAT(e.what(), Catch::Contains("failed in this call and was restarted (restart 2 of 4)"));
  }
  CHECK(a.call(&Accumulator::add, 5.0).get(10s) == 15.0);
  CHECK(a.call(&Accumulator::restarts).get(10s) == 0);  // each worker is a first incarnation locally
}

TEST_CASE("stop ends the worker after earlier calls; later calls fail", "[process]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Accumulator>(0.0, Options{}.process());
  auto before = a.call(&Accumulator::add, 2.0);
  a.stop().get(10s);
  CHECK(before.get(10s) == 2.0);
  try {
    a.call(&Accumulator::add, 1.0).get(10s);
    FAIL("call after stop succeeded");
  } catch (const ActorDied& e) {
    CHECK(e.cause() == DeathCause::stopped);
  }
}

TEST_CASE("runtime shutdown kills worker processes and fails their calls", "[process]") {
  Ref<double> pending;
  int pid = 0;
  Promise<double> never;
  {
    Runtime rt({.threads = 2});
    auto a = rt.spawn<Accumulator>(0.0, Options{}.process());
    pid = a.call(&Accumulator::pid).get(10s);
    pending = a.call(&Accumulator::add, never.ref());
  }
  CHECK_THROWS_AS(pending.get(5s), ActorDied);
  eventually([&] { return ::kill(pid, 0) != 0; });  // the worker is gone
}

TEST_CASE("spawning an unregistered class as a process actor is a clear error", "[process]") {
  struct Plain {
    int f() { return 1; }
  };
  Runtime rt({.threads = 1});
  CHECK_THROWS_WITH(rt.spawn<Plain>(Options{}.process()), Catch::Contains("not registered with TROUPE_ACTOR"));
}

TEST_CASE("a GPU request this node cannot meet fails at spawn, naming the resource", "[process]") {
  Runtime rt({.threads = 1});
  if (!devices().gpus.empty()) {
    SUCCEED("this machine has GPUs; the infeasible case is checked with more than it has");
    CHECK_THROWS_WITH(rt.spawn<Accumulator>(0.0, Options{}.gpus(static_cast<double>(devices().gpus.size() + 1))),
                      Catch::Contains("infeasible") && Catch::Contains("GPU="));
    return;
  }
  CHECK_THROWS_AS(rt.spawn<Accumulator>(0.0, Options{}.gpus(1)), Infeasible);
  CHECK_THROWS_WITH(rt.spawn<Accumulator>(0.0, Options{}.gpus(1)),
                    Catch::Contains("infeasible") && Catch::Contains("GPU=1") && Catch::Contains("GPU: wants 1, has none"));
  CHECK_THROWS_WITH(rt.spawn<Accumulator>(0.0, Options{}.gpus(1.5)), Catch::Contains("whole numbers"));
  CHECK_THROWS_WITH(rt.spawn<Accumulator>(0.0, Options{}.resource("license", 1)),
                    Catch::Contains("license: wants 1, has none"));
}

TEST_CASE("a driver without troupe::init is told to call it; a worker that never reaches init spawns nothing",
          "[process]") {
  const std::string exe = std::string(std::getenv("TROUPE_BIN_DIR")) + "/../tests/troupe_noinit_driver";
  // As a driver: the spawn is refused, naming the fix, before any worker starts.
  auto driver = troupe::test::run_process({exe}, 30s);
  INFO(driver.out << driver.err);
  CHECK(driver.exit_code == 3);
  CHECK_THAT(driver.err, Catch::Contains("call troupe::init(argc, argv) first in main") &&
                             Catch::Contains("as a process actor"));
  // As a launcher starts a worker (socket fd in the environment): it exits at
  // its Runtime, before its main() can spawn workers of its own.
  auto worker = troupe::test::run_process({exe, "--troupe-worker"}, 30s, {"TROUPE_WORKER_FD=3"});
  INFO(worker.out << worker.err);
  CHECK(worker.exit_code == 64);
  CHECK_THAT(worker.err, Catch::Contains("call troupe::init(argc, argv) first in main"));
  CHECK_THAT(worker.out, !Catch::Contains("spawned"));
  auto dialled = troupe::test::run_process({exe, "--troupe-worker"}, 30s, {"TROUPE_CONNECT=127.0.0.1:1"});
  CHECK(dialled.exit_code == 64);
}
