#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "runtime/troupe.hpp"

using namespace std::chrono_literals;
using troupe::Promise;
using troupe::Ref;

TEST_CASE("a Ref from a value is ready", "[ref]") {
  auto r = Ref<int>::from_value(7);
  CHECK(r.ready());
  CHECK(r.get() == 7);
  CHECK(std::move(r).get() == 7);
}

TEST_CASE("get blocks until another thread sets the value", "[ref]") {
  Promise<std::string> p;
  auto r = p.ref();
  std::thread t([p = std::move(p)]() mutable {
    std::this_thread::sleep_for(5ms);
    p.set_value("done");
  });
  CHECK(r.get() == "done");
  t.join();
}

TEST_CASE("get with a timeout raises TimeoutError and can be retried", "[ref]") {
  Promise<int> p;
  auto r = p.ref();
  CHECK_THROWS_AS(r.get(10ms), troupe::TimeoutError);
  CHECK_THROWS_WITH(r.get(1ms), Catch::Contains("timed out after 1 ms"));
  p.set_value(3);
  CHECK(r.get(10ms) == 3);
}

TEST_CASE("an error travels with its type and message", "[ref]") {
  auto r = Ref<int>::from_error(std::make_exception_ptr(std::out_of_range("index 9 of 3")));
  CHECK(r.has_error());
  CHECK_THROWS_AS(r.get(), std::out_of_range);
  CHECK_THROWS_WITH(r.get(), "index 9 of 3");
}

TEST_CASE("a dropped Promise breaks its Ref instead of hanging it", "[ref]") {
  Ref<int> r;
  {
    Promise<int> p;
    r = p.ref();
  }
  CHECK_THROWS_AS(r.get(), troupe::BrokenRef);
}

TEST_CASE("then chains values and passes errors through", "[ref]") {
  Promise<int> p;
  auto doubled = p.ref().then([](int v) { return v * 2; });
  auto text = doubled.then([](int v) { return std::to_string(v); });
  p.set_value(21);
  CHECK(text.get() == "42");

  auto failed = Ref<int>::from_error(std::make_exception_ptr(std::runtime_error("boom")));
  bool ran = false;
  auto next = failed.then([&](int) {
    ran = true;
    return 1;
  });
  CHECK_THROWS_WITH(next.get(), "boom");
  CHECK_FALSE(ran);

  auto thrown = Ref<int>::from_value(1).then([](int) -> int { throw std::logic_error("in then"); });
  CHECK_THROWS_AS(thrown.get(), std::logic_error);
}

TEST_CASE("then flattens a Ref returned by the continuation", "[ref]") {
  Promise<int> inner;
  auto r = Ref<int>::from_value(1).then([ir = inner.ref()](int) { return ir; });
  CHECK_FALSE(r.wait_for(5ms));
  inner.set_value(9);
  CHECK(r.get() == 9);
}

TEST_CASE("when_all gathers in order and fails on the first error", "[ref]") {
  Promise<int> a, b;
  auto all = troupe::when_all(std::vector<Ref<int>>{a.ref(), b.ref()});
  b.set_value(2);
  CHECK_FALSE(all.ready());
  a.set_value(1);
  CHECK(all.get() == std::vector<int>{1, 2});

  Promise<int> c, d;
  auto bad = troupe::when_all(std::vector<Ref<int>>{c.ref(), d.ref()});
  d.set_error(std::make_exception_ptr(std::runtime_error("rank 1 failed")));
  CHECK_THROWS_WITH(bad.get(10ms), "rank 1 failed");  // fails before c completes

  auto none = troupe::when_all(std::vector<Ref<int>>{});
  CHECK(none.get().empty());
}

TEST_CASE("when_all over mixed types gives a tuple", "[ref]") {
  auto t = troupe::when_all(Ref<int>::from_value(1), Ref<std::string>::from_value("x"));
  auto [i, s] = t.get();
  CHECK(i == 1);
  CHECK(s == "x");
}

TEST_CASE("when_any gives the index of the first to finish", "[ref]") {
  Promise<int> a, b;
  auto any = troupe::when_any(std::vector<Ref<int>>{a.ref(), b.ref()});
  b.set_value(5);
  CHECK(any.get() == 1);
  a.set_value(1);
  CHECK_THROWS_AS(troupe::when_any(std::vector<Ref<int>>{}), troupe::UsageError);
}

TEST_CASE("many threads wait on one Ref", "[ref]") {
  Promise<int> p;
  auto r = p.ref();
  std::vector<std::thread> waiters;
  std::atomic<int> sum{0};
  for (int i = 0; i < 8; ++i) waiters.emplace_back([r, &sum] { sum += r.get(); });
  std::this_thread::sleep_for(2ms);
  p.set_value(1);
  for (auto& t : waiters) t.join();
  CHECK(sum == 8);
}

TEST_CASE("std::move(ref).get() consumes the Ref: a second get is refused, not an empty value", "[ref]") {
  auto r = Ref<std::vector<int>>::from_value(std::vector<int>{1, 2, 3});
  CHECK(std::move(r).get() == std::vector<int>{1, 2, 3});
  CHECK_FALSE(r.valid());
  CHECK_THROWS_AS(r.get(), troupe::UsageError);
  CHECK_THROWS_WITH(r.get(), Catch::Contains("already consumed by std::move(ref).get()"));
  // A copy shares the state: consuming one leaves the other its value.
  auto a = Ref<std::string>::from_value("kept");
  auto b = a;
  CHECK(std::move(a).get() == "kept");
  CHECK(b.get() == "kept");
  CHECK(std::move(b).get() == "kept");
  // An error stays an error for every reader.
  auto e = Ref<int>::from_error(std::make_exception_ptr(std::runtime_error("boom")));
  CHECK_THROWS_WITH(std::move(e).get(), "boom");
  CHECK_THROWS_AS(e.get(), troupe::UsageError);
}
