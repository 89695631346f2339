#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "runtime/troupe.hpp"

using namespace std::chrono_literals;
using namespace troupe;

namespace {

class Counter {
 public:
  explicit Counter(int start = 0) : value_(start) {}
  int add(int n) { return value_ += n; }
  int get() const { return value_; }
  void reset() { value_ = 0; }
  std::vector<int> log(int v) {
    seen_.push_back(v);
    return seen_;
  }
  int fail_if_negative(int n) {
    if (n < 0) throw std::invalid_argument("negative input: " + std::to_string(n));
    return n;
  }
  std::string who() const { return fmt::format("{}#{}", self().name(), self().rank()); }
  std::string concat(const std::string& a, std::string b) { return a + b; }
  int slow_add(int n) {
    std::this_thread::sleep_for(20ms);
    return value_ += n;
  }

 private:
  int value_;
  std::vector<int> seen_;
};

}  // namespace

TEST_CASE("spawn and call an actor", "[actor]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>(10);
  CHECK(c.call(&Counter::add, 5).get() == 15);
  CHECK(c.call(&Counter::get).get() == 15);
  c.call(&Counter::reset).get();
  CHECK(c.call(&Counter::get).get() == 0);
}

TEST_CASE("calls from one sender run in order, one at a time", "[actor]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>();
  std::vector<Ref<std::vector<int>>> refs;
  for (int i = 0; i < 1000; ++i) refs.push_back(c.call(&Counter::log, i));
  auto final_log = refs.back().get();
  REQUIRE(final_log.size() == 1000);
  for (int i = 0; i < 1000; ++i) CHECK(final_log[i] == i);
}

TEST_CASE("many senders keep per-sender FIFO and lose nothing", "[actor]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>();
  constexpr int kSenders = 4, kCalls = 2000;
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      std::vector<Ref<std::vector<int>>> refs;
      for (int i = 0; i < kCalls; ++i) refs.push_back(c.call(&Counter::log, s * kCalls + i));
      for (auto& r : refs) r.wait();
    });
  }
  for (auto& t : senders) t.join();
  auto all = c.call(&Counter::log, -1).get();
  REQUIRE(all.size() == kSenders * kCalls + 1);
  std::vector<int> last(kSenders, -1);
  for (int v : all) {
    if (v < 0) continue;
    int s = v / kCalls;
    CHECK(v > last[s]);
    last[s] = v;
  }
}

TEST_CASE("a method's exception reaches get() with its type and message", "[actor]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>();
  auto bad = c.call(&Counter::fail_if_negative, -4);
  CHECK_THROWS_AS(bad.get(), std::invalid_argument);
  CHECK_THROWS_WITH(bad.get(), "negative input: -4");
  // The actor lives on.
  CHECK(c.call(&Counter::fail_if_negative, 4).get() == 4);
}

TEST_CASE("a Ref argument is resolved before the call runs", "[actor]") {
  Runtime rt({.threads = 2});
  auto a = rt.spawn<Counter>(1);
  auto b = rt.spawn<Counter>(100);
  auto x = a.call(&Counter::add, 1);  // 2
  auto y = b.call(&Counter::add, x);  // 102
  CHECK(y.get() == 102);

  Promise<int> later;
  auto z = b.call(&Counter::add, later.ref());
  auto after = b.call(&Counter::add, 1000);  // same sender: must wait behind z
  CHECK_FALSE(after.wait_for(20ms));
  later.set_value(5);
  CHECK(z.get() == 107);
  CHECK(after.get() == 1107);
}

TEST_CASE("a failed Ref argument fails the call with that error", "[actor]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>();
  auto bad = c.call(&Counter::fail_if_negative, -1);
  auto dependent = c.call(&Counter::add, bad);
  CHECK_THROWS_AS(dependent.get(), std::invalid_argument);
  CHECK(c.call(&Counter::get).get() == 0);
}

TEST_CASE("string arguments by const ref and by value", "[actor]") {
  Runtime rt({.threads = 1});
  auto c = rt.spawn<Counter>();
  std::string a = "left-";
  CHECK(c.call(&Counter::concat, a, std::string("right")).get() == "left-right");
  CHECK(a == "left-");
}

TEST_CASE("get with a timeout names the actor", "[actor]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>(Options{}.name("sleepy"));
  auto r = c.call(&Counter::slow_add, 1);
  CHECK_THROWS_AS(r.get(1ms), TimeoutError);
  CHECK_THROWS_WITH(r.get(1ms), Catch::Contains("actor 'sleepy'"));
  CHECK(r.get(5s) == 1);
}

TEST_CASE("named actors: lookup, duplicates, type checks", "[actor]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>(3, Options{}.name("counter"));
  auto found = rt.get_actor<Counter>("counter");
  CHECK(found.call(&Counter::get).get() == 3);
  CHECK(found == c);
  CHECK_THROWS_AS(rt.spawn<Counter>(Options{}.name("counter")), DuplicateName);
  CHECK_THROWS_WITH(rt.spawn<Counter>(Options{}.name("counter")), Catch::Contains("'counter' already exists"));
  CHECK_THROWS_AS(rt.get_actor<Counter>("nobody"), ActorNotFound);
  CHECK_FALSE(rt.find_actor<Counter>("nobody").has_value());
  CHECK_THROWS_WITH(rt.get_actor<std::string>("counter"), Catch::Contains("is not a"));
  // A name is free again once its actor is dead.
  c.stop().get();
  CHECK_FALSE(rt.find_actor<Counter>("counter").has_value());
  auto again = rt.spawn<Counter>(Options{}.name("counter"));
  CHECK(again.call(&Counter::get).get() == 0);
}

TEST_CASE("self() names the running actor", "[actor]") {
  Runtime rt({.threads = 2});
  auto c = rt.spawn<Counter>(Options{}.name("me"));
  CHECK(c.call(&Counter::who).get() == "me#0");
  CHECK_THROWS_AS(self(), UsageError);
}

TEST_CASE("one actor calling another", "[actor]") {
  struct Front {
    ActorRef<Counter> back;
    explicit Front(ActorRef<Counter> b) : back(std::move(b)) {}
    Ref<int> forward(int n) { return back.call(&Counter::add, n); }
  };
  Runtime rt({.threads = 2});
  auto back = rt.spawn<Counter>(1);
  auto front = rt.spawn<Front>(back);
  CHECK(front.call(&Front::forward, 2).get() == 3);
  CHECK(front.call(&Front::forward, 3).get() == 6);
}

TEST_CASE("get() on a call to itself inside an actor is refused, not a deadlock", "[actor]") {
  struct Selfish {
    ActorRef<Selfish> me;
    int one() { return 1; }
    int deadlock() {
      auto ref = self().runtime().get_actor<Selfish>("selfish");
      return ref.call(&Selfish::one).get();
    }
  };
  Runtime rt({.threads = 2});
  auto s = rt.spawn<Selfish>(Options{}.name("selfish"));
  CHECK_THROWS_AS(s.call(&Selfish::deadlock).get(), UsageError);
  CHECK_THROWS_WITH(s.call(&Selfish::deadlock).get(), Catch::Contains("would deadlock"));
}

TEST_CASE("self_ref gives an actor a handle to itself, as its callers hold", "[actor]") {
  struct Node {
    int value = 7;
    int get() const { return value; }
    // Hands its own handle out: the peer calls back through it.
    troupe::ActorRef<Node> me() { return troupe::self_ref<Node>(); }
    std::uint64_t my_id() { return troupe::self_ref<Node>().id(); }
  };
  troupe::Runtime rt({.threads = 2});
  auto n = rt.spawn<Node>();
  auto handle = n.call(&Node::me).get();
  CHECK(handle == n);
  CHECK(handle.call(&Node::get).get() == 7);
  CHECK(n.call(&Node::my_id).get() == n.id());
  CHECK_THROWS_WITH(troupe::self_ref<Node>(), Catch::Contains("self_ref") && Catch::Contains("outside an actor"));
}
