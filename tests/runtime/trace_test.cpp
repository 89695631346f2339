// Tracing (`troupe trace`) inside one process: a session records actor calls
// tied to their sends, names registered methods, stops at its deadline,
// counts what does not fit, and comes out as a Chrome trace whose flows all
// have both ends.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <thread>

#include "runtime/actor.hpp"
#include "runtime/trace.hpp"
#include "runtime/troupe.hpp"
#include "tests/support/json.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

class Ponger {
 public:
  int pong(int i) { return i + 1; }
};

class Pinger {
 public:
  Task<int> ping(ActorRef<Ponger> p, int n) {
    int sum = 0;
    for (int i = 0; i < n; ++i) sum += co_await p.call(&Ponger::pong, i);
    co_return sum;
  }
};

std::vector<const trace::Event*> of_kind(const trace::ProcessTrace& t, trace::Kind k) {
  std::vector<const trace::Event*> out;
  for (auto& e : t.events)
    if (e.kind == static_cast<std::uint32_t>(k)) out.push_back(&e);
  return out;
}

}  // namespace

TROUPE_ACTOR(Ponger, pong);

TEST_CASE("a trace session ties each call to its send and names registered methods", "[trace]") {
  Runtime rt({.threads = 2});
  auto ponger = rt.spawn<Ponger>();
  auto pinger = rt.spawn<Pinger>();
  REQUIRE(!trace::on());
  REQUIRE(trace::start(60s));
  REQUIRE(!trace::start(60s));  // one session at a time
  CHECK(pinger.call(&Pinger::ping, ponger, 20).get(30s) == 210);
  auto t = trace::take("test");
  CHECK(!trace::on());
  CHECK(t.label == "test");
  CHECK(t.dropped == 0);

  auto calls = of_kind(t, trace::Kind::call);
  auto sends = of_kind(t, trace::Kind::send);
  const auto pongs = std::count_if(calls.begin(), calls.end(), [&](auto* e) {
    return e->name == "Ponger.pong" && e->track == ponger.id();
  });
  CHECK(pongs == 20);
  // Pinger is not registered with TROUPE_ACTOR: its calls say whose they are.
  CHECK(std::count_if(calls.begin(), calls.end(), [](auto* e) { return e->name == "Pinger.call"; }) == 1);
  // Every call's flow comes from one send: the pongs' from the pinger's track.
  for (auto* c : calls) {
    INFO(c->name);
    REQUIRE(c->flow != 0);
    auto from = std::find_if(sends.begin(), sends.end(), [&](auto* s) { return s->flow == c->flow; });
    REQUIRE(from != sends.end());
    CHECK((*from)->ts_ns <= c->ts_ns);
    if (c->name == "Ponger.pong") CHECK((*from)->track == pinger.id());
  }
  // Tracks are named: the actors by their label.
  auto named = [&](std::uint64_t id) {
    for (auto& tr : t.tracks)
      if (tr.id == id) return tr.name;
    return std::string();
  };
  CHECK_THAT(named(ponger.id()), Catch::Contains("#" + std::to_string(ponger.id())));
  // The test's own thread (it sent the first call) is the main thread.
  auto first = std::find_if(sends.begin(), sends.end(), [](auto* s) { return s->name == "Pinger.call"; });
  REQUIRE(first != sends.end());
  CHECK(named((*first)->track) == "main thread");
  // A coroutine call's span lasts until it ends: it holds the pongs it awaited.
  auto ping = std::find_if(calls.begin(), calls.end(), [](auto* e) { return e->name == "Pinger.call"; });
  REQUIRE(ping != calls.end());
  for (auto* s : sends)
    if (s->name == "Ponger.pong") CHECK((s->ts_ns >= (*ping)->ts_ns && s->ts_ns <= (*ping)->ts_ns + (*ping)->dur_ns));

  // As a Chrome trace: valid JSON, every flow with both ends.
  trace::ChromeStats st;
  const auto text = trace::to_chrome({t}, {"a note"}, &st);
  auto root = test::parse_json(text);
  auto check = test::check_chrome(root);
  for (auto& p : check.problems) UNSCOPED_INFO(p);
  CHECK(check.problems.empty());
  CHECK(st.flows == 21);
  CHECK(check.flows == 21);
  CHECK(check.spans == st.events);
  CHECK_THAT(text, Catch::Contains("\"notes\":[\"a note\"]"));
  std::size_t pong_spans = 0;
  for (auto* e : check.events) pong_spans += e->str("name") == "Ponger.pong";
  CHECK(pong_spans == 20);
}

TEST_CASE("tracing off records nothing; a full buffer drops and counts; a session ends at its deadline", "[trace]") {
  // Off: spans and sends are no-ops.
  trace::span(trace::Kind::user, "ignored", 1, 2);
  CHECK(trace::send("ignored") == 0);
  { trace::Scope s("ignored too"); }
  REQUIRE(trace::start(60s));
  auto empty = trace::take("t");
  CHECK(empty.events.empty());
  // A scope is a span on the current track.
  REQUIRE(trace::start(60s));
  { trace::Scope s("load shard"); }
  auto scoped = trace::take("t");
  REQUIRE(scoped.events.size() == 1);
  CHECK(scoped.events[0].name == "load shard");
  CHECK(scoped.events[0].kind == static_cast<std::uint32_t>(trace::Kind::user));

  REQUIRE(trace::start(60s));
  const auto t0 = trace::now_ns();
  for (std::size_t i = 0; i < trace::kThreadEvents + 5; ++i) trace::span(trace::Kind::user, "tick", t0, t0 + 1);
  auto full = trace::take("t");
  CHECK(full.events.size() == trace::kThreadEvents);
  CHECK(full.dropped == 5);
  CHECK_THAT(trace::to_chrome({full}, {}), Catch::Contains("5 events dropped"));
  // Spans of one track that overlap without nesting (two operations in
  // flight) are drawn on lanes of their own, so every thread's spans nest.
  {
    trace::ProcessTrace p;
    p.pid = 42;
    p.tracks.push_back({7, "group dp rank 0 (shm)"});
    for (std::int64_t k = 0; k < 4; ++k)  // [0,10], [5,15], [10,20], [15,25] us, and one inside the first
      p.events.push_back({k * 5000, 10000, 7, 0, static_cast<std::uint32_t>(trace::Kind::collective), 64, "allreduce"});
    p.events.push_back({1000, 2000, 7, 0, static_cast<std::uint32_t>(trace::Kind::collective), 8, "barrier"});
    std::sort(p.events.begin(), p.events.end(), [](auto& a, auto& b) { return a.ts_ns < b.ts_ns; });
    const auto text = trace::to_chrome({p}, {});
    auto check = test::check_chrome(test::parse_json(text));
    for (auto& pr : check.problems) UNSCOPED_INFO(pr);
    CHECK(check.problems.empty());
    CHECK(check.spans == 5);
    CHECK_THAT(text, Catch::Contains("group dp rank 0 (shm) (overlapping, 2)") && Catch::Contains("\"bytes\":64"));
    CHECK_THAT(text, !Catch::Contains("(overlapping, 3)"));  // two lanes hold them all
  }
  // Two processes with one pid (two hosts): two processes in the viewer.
  auto twice = test::parse_json(trace::to_chrome({full, full}, {}));
  std::set<double> pids;
  for (auto& e : twice.get("traceEvents")->items)
    if (e.str("ph") == "M" && e.str("name") == "process_name") pids.insert(e.num("pid"));
  CHECK(pids.size() == 2);

  // A thread that ended inside the window: its events are still taken (its
  // buffer is freed after that), and the next session goes on without it.
  REQUIRE(trace::start(60s));
  std::thread([] { trace::span(trace::Kind::user, "short-lived", trace::now_ns(), trace::now_ns()); }).join();
  auto gone = trace::take("t");
  REQUIRE(gone.events.size() == 1);
  CHECK(gone.events[0].name == "short-lived");
  REQUIRE(trace::start(60s));
  CHECK(trace::take("t").events.empty());

  // A span that starts past the deadline ends the session: nothing more is kept.
  REQUIRE(trace::start(1ms));
  trace::span(trace::Kind::user, "late", t0 + 3'600'000'000'000LL, t0 + 3'600'000'000'001LL);
  CHECK(!trace::on());
  CHECK(trace::take("t").events.empty());
}

TEST_CASE("a busy thread samples its calls so its buffer lasts the window, and says how many it left out",
          "[trace]") {
  Runtime rt({.threads = 2});
  auto ponger = rt.spawn<Ponger>();
  // Many more calls from this thread than its buffer holds, early in a long
  // window: past an eighth of the buffer it keeps 1 in 2, 4, ... calls.
  const int n = static_cast<int>(trace::kThreadEvents) * 3;
  REQUIRE(trace::start(600s));
  std::vector<Ref<int>> refs;
  refs.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) refs.push_back(ponger.call(&Ponger::pong, i));
  for (auto& r : refs) r.get(30s);
  auto t = trace::take("busy");
  CHECK(t.dropped == 0);  // sampled, not cut off
  CHECK(t.sampling > 1);
  const auto sends = of_kind(t, trace::Kind::send), calls = of_kind(t, trace::Kind::call);
  // Every call is either traced (its send kept) or counted as left out.
  CHECK(sends.size() + t.sampled_out == static_cast<std::size_t>(n));
  CHECK(sends.size() < trace::kThreadEvents / 4);
  // A call left out is left out at both ends: each run that is there has its send.
  std::set<std::uint64_t> sent;
  for (auto* e : sends) sent.insert(e->flow);
  REQUIRE(calls.size() == sends.size());
  for (auto* e : calls) CHECK(sent.count(e->flow) == 1);
  CHECK_THAT(trace::to_chrome({t}, {}), Catch::Contains("calls sampled, down to 1 in "));

  // The thread had calls still to leave out when that session ended: the
  // next session starts afresh and keeps its first calls, whole.
  REQUIRE(trace::start(600s));
  for (int i = 0; i < 10; ++i) CHECK(ponger.call(&Ponger::pong, i).get(30s) == i + 1);
  auto next = trace::take("next");
  CHECK(next.sampled_out == 0);
  CHECK(next.sampling == 1);
  CHECK(of_kind(next, trace::Kind::send).size() == 10);
  CHECK(of_kind(next, trace::Kind::call).size() == 10);
}
