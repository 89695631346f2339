// The pool grows while its threads block in get(): actors that wait on other
// actors never take every thread from the calls they wait for.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <vector>

#include "runtime/detail/executor.hpp"
#include "runtime/troupe.hpp"
#include "tests/support/eventually.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using troupe::test::eventually;

namespace {

struct Gate {
  Promise<int> open;
  Ref<int> ref = open.ref();
  std::atomic<int> waiting{0};
};

// Blocks its pool thread in get() until the gate opens.
class Waiter {
 public:
  explicit Waiter(std::shared_ptr<Gate> g) : gate_(std::move(g)) {}
  int wait() {
    ++gate_->waiting;
    return gate_->ref.get() + 1;
  }

 private:
  std::shared_ptr<Gate> gate_;
};

// Opens the gate: it needs a pool thread of its own to run.
class Opener {
 public:
  explicit Opener(std::shared_ptr<Gate> g) : gate_(std::move(g)) {}
  int open(int v) {
    gate_->open.set_value(v);
    return v;
  }

 private:
  std::shared_ptr<Gate> gate_;
};

}  // namespace

TEST_CASE("actors blocked in get() on every pool thread do not starve the call they wait for", "[executor]") {
  Runtime rt({.threads = 2});
  auto gate = std::make_shared<Gate>();
  std::vector<ActorRef<Waiter>> waiters;
  std::vector<Ref<int>> waits;
  for (int i = 0; i < 4; ++i) {  // twice as many blocked actors as threads
    waiters.push_back(rt.spawn<Waiter>(gate));
    waits.push_back(waiters.back().call(&Waiter::wait));
  }
  // Every waiter is inside get(): without more threads nothing else runs.
  eventually([&]() { return gate->waiting.load() == 4; });
  auto opener = rt.spawn<Opener>(gate);
  CHECK(opener.call(&Opener::open, 41).get(10s) == 41);
  for (auto& w : waits) CHECK(w.get(10s) == 42);
  CHECK(rt.executor().threads() > 2);  // it grew to do it
  CHECK(rt.executor().size() == 2);
  // The grown pool serves on, and many rounds reuse its parked threads.
  for (int round = 0; round < 20; ++round) {
    auto g = std::make_shared<Gate>();
    auto a = rt.spawn<Waiter>(g), b = rt.spawn<Waiter>(g);
    auto ra = a.call(&Waiter::wait), rb = b.call(&Waiter::wait);
    eventually([&]() { return g->waiting.load() == 2; });
    CHECK(rt.spawn<Opener>(g).call(&Opener::open, round).get(10s) == round);
    CHECK(ra.get(10s) == round + 1);
    CHECK(rb.get(10s) == round + 1);
  }
  CHECK(rt.executor().threads() <= 2 + 4 + 2);
}

TEST_CASE("the pool stops growing at its cap and says so", "[executor]") {
  Runtime rt({.threads = 1, .max_threads = 2});
  auto gate = std::make_shared<Gate>();
  auto a = rt.spawn<Waiter>(gate), b = rt.spawn<Waiter>(gate);
  auto ra = a.call(&Waiter::wait), rb = b.call(&Waiter::wait);
  eventually([&]() { return gate->waiting.load() == 2; });
  CHECK(rt.executor().threads() == 2);
  gate->open.set_value(1);  // from outside the pool: nothing inside can run now
  CHECK(ra.get(10s) == 2);
  CHECK(rb.get(10s) == 2);
}
