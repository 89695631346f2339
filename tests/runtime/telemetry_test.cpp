// Straggler naming: each rank against the median of its peers.
#include <catch2/catch.hpp>

#include "runtime/telemetry.hpp"
#include "runtime/troupe.hpp"

using troupe::telemetry::find_stragglers;
using troupe::telemetry::RankTiming;

namespace {
RankTiming rank(std::uint32_t r, double compute_ms, std::string peers = "replica") {
  return {r, "replica " + std::to_string(r), std::move(peers), 0, compute_ms / 1e3, 0};
}
}  // namespace

TEST_CASE("a rank slower than its peers' median is named, with how much", "[telemetry]") {
  auto s = find_stragglers({rank(0, 10), rank(1, 10.4), rank(2, 25), rank(3, 9.8)});
  REQUIRE(s.size() == 1);
  CHECK(s[0].rank == 2);
  CHECK(s[0].peers_s == Approx(0.010));  // the median of 10, 10.4 and 9.8
  CHECK(s[0].slowdown == Approx(2.5));
  CHECK_THAT(troupe::telemetry::describe(s[0]),
             Catch::Contains("rank 2 (replica 2): 25.00 ms/step, 2.5x its peers' 10.00 ms"));
}

TEST_CASE("two ranks: the slow one is named, never both", "[telemetry]") {
  auto s = find_stragglers({rank(0, 4), rank(1, 9)});
  REQUIRE(s.size() == 1);
  CHECK(s[0].rank == 1);
  CHECK(find_stragglers({rank(0, 4), rank(1, 4.4)}).empty());  // within 30%
}

TEST_CASE("noise on short steps and ranks without peers are not stragglers", "[telemetry]") {
  // 0.2 ms against 0.1 ms is 2x, but a tenth of a millisecond apart.
  CHECK(find_stragglers({rank(0, 0.1), rank(1, 0.2)}).empty());
  // Pipeline stages differ by design: each is compared with the same stage only.
  CHECK(find_stragglers({rank(0, 10, "stage 0"), rank(1, 40, "stage 1")}).empty());
  auto s = find_stragglers({rank(0, 10, "stage 0"), rank(1, 40, "stage 1"), rank(2, 10, "stage 0"),
                            rank(3, 80, "stage 1")});
  REQUIRE(s.size() == 1);
  CHECK(s[0].rank == 3);
  CHECK(find_stragglers({}).empty());
  CHECK(find_stragglers({rank(0, 0), rank(1, 0)}).empty());
}

TEST_CASE("a straggler is named after two slow reports of three, never from the first, with where it began, "
          "and stays named until it keeps up three times",
          "[telemetry]") {
  troupe::telemetry::StragglerWatch w;
  const std::vector<RankTiming> slow{rank(0, 10), rank(1, 30)}, even{rank(0, 10), rank(1, 10.5)};
  CHECK(w.update(2, slow).empty());  // the job's first report: warm-up
  CHECK(w.update(4, slow).empty());  // slow once
  REQUIRE(w.update(6, slow).size() == 1);
  CHECK(w.named()[0].since_step == 4);
  CHECK(w.named()[0].slowdown == Approx(3.0));
  // One fast report (a noisy window) does not clear it, nor move "since".
  REQUIRE(w.update(8, even).size() == 1);
  CHECK(w.named()[0].since_step == 4);
  CHECK(w.named()[0].slowdown == Approx(3.0));  // the last slow report's figures
  REQUIRE(w.update(10, slow).size() == 1);
  CHECK(w.named()[0].since_step == 4);
  // Keeping up three times in a row ends it.
  CHECK(w.update(12, even).size() == 1);
  CHECK(w.update(14, even).size() == 1);
  CHECK(w.update(16, even).empty());
  // Slow, fast, slow: two of three, named since the first of them.
  CHECK(w.update(18, slow).empty());
  CHECK(w.update(20, even).empty());
  REQUIRE(w.update(22, slow).size() == 1);
  CHECK(w.named()[0].since_step == 18);
  // A rank that leaves the report is forgotten.
  CHECK(w.update(24, {rank(0, 10), rank(2, 10.2)}).empty());
  CHECK(w.update(26, {rank(0, 10), rank(1, 30)}).empty());  // rank 1 again: slow once, from scratch
}

TEST_CASE("several stragglers come slowest first", "[telemetry]") {
  auto s = find_stragglers({rank(0, 10), rank(1, 10), rank(2, 10), rank(3, 20), rank(4, 30)});
  REQUIRE(s.size() == 2);
  CHECK(s[0].rank == 4);
  CHECK(s[1].rank == 3);
}

#include <chrono>
#include <future>

#include "runtime/troupe.hpp"
#include "tests/support/eventually.hpp"

namespace {
struct Gate {
  explicit Gate(std::shared_future<int> open) : open_(std::move(open)) {}
  int hold() { return open_.get(); }  // runs, and blocks its actor until the test opens it
  int ping() { return 1; }
  std::shared_future<int> open_;
};
}  // namespace

TEST_CASE("an actor counts the calls it ran, the ones waiting, and how long sampled calls took", "[telemetry]") {
  troupe::Runtime rt({.threads = 2});
  std::promise<int> open;
  auto a = rt.spawn<Gate>(open.get_future().share());
  for (int i = 0; i < 160; ++i) a.call(&Gate::ping).get();
  auto find = [&]() {
    for (auto& s : rt.actor_samples())
      if (s.id == a.id()) return s;
    FAIL("no sample for the actor");
    return troupe::telemetry::ActorSample{};
  };
  auto s = find();
  CHECK(s.calls == 160);
  CHECK(s.depth == 0);  // 160 calls from one thread: counted exactly, 8 at a time
  std::uint64_t sampled = 0;
  for (auto c : s.latency) sampled += c;
  CHECK(sampled == 20);  // one call in 8 (the calling thread's own count)
  CHECK(troupe::telemetry::quantile_s(s.latency, 0.99) > 0);
  // Inside a call that blocks: 40 more wait in its mailbox (counted 8 at a
  // time, so within 7).
  auto held = a.call(&Gate::hold);
  troupe::test::eventually([&] { return find().calls == 161; });
  std::vector<troupe::Ref<int>> queued;
  for (int i = 0; i < 40; ++i) queued.push_back(a.call(&Gate::ping));
  CHECK(find().depth >= 33);
  CHECK(find().depth <= 40);
  open.set_value(7);
  CHECK(held.get() == 7);
  for (auto& q : queued) CHECK(q.get() == 1);
  troupe::test::eventually([&] { return find().calls == 201; });
  CHECK(find().depth == 0);
}

TEST_CASE("latency buckets and quantiles", "[telemetry]") {
  using troupe::telemetry::latency_bucket;
  CHECK(latency_bucket(0) == 0);
  CHECK(latency_bucket(1500) == 0);        // 1.5 us
  CHECK(latency_bucket(2500) == 1);        // 2.5 us: [2, 4)
  CHECK(latency_bucket(1'000'000) == 9);   // 1 ms: [512, 1024) us
  CHECK(latency_bucket(std::int64_t{1} << 50) == troupe::telemetry::kLatencyBuckets - 1);
  std::vector<std::uint64_t> h(troupe::telemetry::kLatencyBuckets);
  h[2] = 99;   // [4, 8) us
  h[10] = 1;   // [1024, 2048) us
  CHECK(troupe::telemetry::quantile_s(h, 0.5) == Approx(8e-6));
  CHECK(troupe::telemetry::quantile_s(h, 0.99) == Approx(8e-6));
  CHECK(troupe::telemetry::quantile_s(h, 1.0) == Approx(2048e-6));
  CHECK(troupe::telemetry::quantile_s(std::vector<std::uint64_t>(24), 0.99) == 0);
}

TEST_CASE("each rank is held against the median of its own group's other ranks, groups in any order",
          "[telemetry]") {
  // Two groups interleaved; in "a" the slow rank is left out of its own
  // median (of 10, 11, 12: 11), in "b" (an even count) the median of the
  // others is the mean of the middle two.
  auto s = find_stragglers({rank(0, 10, "a"), rank(1, 50, "b"), rank(2, 11, "a"), rank(3, 20, "b"),
                            rank(4, 30, "a"), rank(5, 22, "b"), rank(6, 12, "a"), rank(7, 21, "b")});
  REQUIRE(s.size() == 2);
  CHECK(s[0].rank == 4);  // 30 / 11: slowest first
  CHECK(s[0].peers_s == Approx(0.011));
  CHECK(s[1].rank == 1);  // 50 / 21 (the others: 20, 21, 22)
  CHECK(s[1].peers_s == Approx(0.021));
  // Thousands of ranks: one slow one among them is found (and only it).
  std::vector<RankTiming> many;
  for (std::uint32_t r = 0; r < 4096; ++r) many.push_back(rank(r, r == 1234 ? 40 : 10 + (r % 7) * 0.1));
  auto one = find_stragglers(many);
  REQUIRE(one.size() == 1);
  CHECK(one[0].rank == 1234);
}

namespace {
class Trainer {
 public:
  void step(std::int64_t n, double compute_s, double wait_s) { troupe::note_step(n, compute_s, wait_s); }
};
}  // namespace

TEST_CASE("steps an actor notes add up in its progress, read from any thread", "[telemetry]") {
  troupe::Runtime rt({.threads = 2});
  auto t = rt.spawn<Trainer>();
  CHECK(t.progress().steps == 0);
  t.call(&Trainer::step, 41, 0.010, 0.002).get();
  t.call(&Trainer::step, 42, 0.030, 0.004).get();
  auto p = t.progress();
  CHECK(p.step == 42);
  CHECK(p.steps == 2);
  CHECK(p.compute_s == Approx(0.040));
  CHECK(p.wait_s == Approx(0.006));
  CHECK(t.cell()->stats().progress.steps == 2);  // what a worker sends its driver
  troupe::note_step(7, 1, 1);  // outside an actor: nothing to note it on, and no harm
  CHECK(t.progress().steps == 2);
}
