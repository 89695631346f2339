#include <catch2/catch.hpp>

#include <chrono>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "runtime/asio.hpp"
#include "runtime/troupe.hpp"

using namespace std::chrono_literals;
using namespace troupe;
namespace asio = boost::asio;

namespace {

class Store {
 public:
  int put(int v) {
    values_.push_back(v);
    return static_cast<int>(values_.size());
  }
  std::vector<int> all() const { return values_; }

 private:
  std::vector<int> values_;
};

class Aggregator {
 public:
  explicit Aggregator(ActorRef<Store> store) : store_(std::move(store)) {}

  // A coroutine method: awaits other actors without blocking a thread.
  Task<int> put_both(int a, int b) {
    trace_.push_back(a);
    int n1 = co_await store_.call(&Store::put, a);
    int n2 = co_await store_.call(&Store::put, b);
    trace_.push_back(b);
    co_return n1 + n2;
  }
  Task<std::string> whoami() {
    co_await store_.call(&Store::put, 0);
    co_return self().name();  // context is valid after a co_await
  }
  Task<int> nested() { co_return co_await put_both(1, 2) + 1; }
  Task<void> fails() {
    co_await store_.call(&Store::put, 1);
    throw std::runtime_error("coroutine failed after a co_await");
  }
  std::vector<int> trace() const { return trace_; }

  // An asio::awaitable method: co_await Refs and asio operations alike.
  asio::awaitable<int> with_timer(int v) {
    asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
    co_await t.async_wait(asio::use_awaitable);
    int n = co_await store_.call(&Store::put, v).awaitable();
    co_return n * 10;
  }
  asio::awaitable<void> awaitable_fails() {
    co_await store_.call(&Store::put, -1).awaitable();
    throw std::logic_error("awaitable failed");
  }

 private:
  ActorRef<Store> store_;
  std::vector<int> trace_;
};

// Holds its mailbox on a promise the test controls.
class Gate {
 public:
  explicit Gate(Ref<int> open) : open_(std::move(open)) {}
  Task<int> wait_gate() {
    log_.push_back("wait-begin");
    int v = co_await open_;
    log_.push_back("wait-end");
    co_return v;
  }
  std::string mark(std::string m) {
    log_.push_back(m);
    return m;
  }
  std::vector<std::string> log() const { return log_; }

 private:
  Ref<int> open_;
  std::vector<std::string> log_;
};

}  // namespace

TEST_CASE("Task methods await other actors", "[coroutine]") {
  Runtime rt({.threads = 2});
  auto store = rt.spawn<Store>();
  auto agg = rt.spawn<Aggregator>(store, Options{}.name("agg"));
  CHECK(agg.call(&Aggregator::put_both, 5, 6).get() == 3);
  CHECK(store.call(&Store::all).get() == std::vector<int>{5, 6});
  CHECK(agg.call(&Aggregator::whoami).get() == "agg");
  CHECK(agg.call(&Aggregator::nested).get() == (4 + 5) + 1);
}

TEST_CASE("Task method exceptions reach the caller", "[coroutine]") {
  Runtime rt({.threads = 2});
  auto agg = rt.spawn<Aggregator>(rt.spawn<Store>());
  CHECK_THROWS_WITH(agg.call(&Aggregator::fails).get(), "coroutine failed after a co_await");
  CHECK_THROWS_WITH(agg.call(&Aggregator::awaitable_fails).get(), "awaitable failed");
}

TEST_CASE("asio::awaitable methods run on the actor's strand", "[coroutine]") {
  Runtime rt({.threads = 2});
  auto store = rt.spawn<Store>();
  auto agg = rt.spawn<Aggregator>(store);
  auto a = agg.call(&Aggregator::with_timer, 1);
  auto b = agg.call(&Aggregator::with_timer, 2);
  CHECK(a.get() == 10);
  CHECK(b.get() == 20);
}

TEST_CASE("a coroutine call holds the mailbox until it finishes", "[coroutine]") {
  Runtime rt({.threads = 2});
  Promise<int> open;
  auto gate = rt.spawn<Gate>(open.ref());
  auto waiting = gate.call(&Gate::wait_gate);
  auto marked = gate.call(&Gate::mark, std::string("after"));
  CHECK_FALSE(marked.wait_for(20ms));
  open.set_value(7);
  CHECK(waiting.get() == 7);
  CHECK(marked.get() == "after");
  CHECK(gate.call(&Gate::log).get() == std::vector<std::string>{"wait-begin", "wait-end", "after"});
}

TEST_CASE("a reentrant actor runs other calls while a coroutine is suspended", "[coroutine]") {
  Runtime rt({.threads = 2});
  Promise<int> open;
  auto gate = rt.spawn<Gate>(open.ref(), Options{}.reentrant());
  auto waiting = gate.call(&Gate::wait_gate);
  CHECK(gate.call(&Gate::mark, std::string("during")).get() == "during");
  open.set_value(1);
  CHECK(waiting.get() == 1);
  CHECK(gate.call(&Gate::log).get() == std::vector<std::string>{"wait-begin", "during", "wait-end"});
}

TEST_CASE("driver coroutines run on the pool with Runtime::start", "[coroutine]") {
  Runtime rt({.threads = 2});
  auto store = rt.spawn<Store>();
  auto driver = [](ActorRef<Store> s) -> Task<int> {
    int total = 0;
    for (int i = 1; i <= 10; ++i) total += co_await s.call(&Store::put, i);
    std::vector<Ref<int>> refs;
    for (int i = 0; i < 5; ++i) refs.push_back(s.call(&Store::put, i));
    auto all = co_await when_all(std::move(refs));
    co_return total + static_cast<int>(all.size());
  };
  CHECK(rt.block_on(driver(store)) == 55 + 5);
  auto failing = []() -> Task<void> {
    co_await Ref<int>::from_value(1);
    throw std::runtime_error("driver failed");
  };
  CHECK_THROWS_WITH(rt.start(failing()).get(), "driver failed");
}
