// Pipeline schedules: generated ones pass the checker with the textbook bubble
// and memory; text round-trips; broken schedules are refused, naming the place.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "trainers/schedule.hpp"

using namespace troupe::pipeline;

namespace {

const Kind kAll[] = {Kind::gpipe, Kind::one_f_one_b, Kind::interleaved, Kind::zb_h1};

// Replaces the first action equal to `from` on stage r with `to`.
void replace(Schedule& s, int r, Action from, Action to) {
  auto& l = s.actions[r];
  auto it = std::find(l.begin(), l.end(), from);
  REQUIRE(it != l.end());
  *it = to;
}

std::size_t index_of(const Schedule& s, int r, Action a) {
  auto& l = s.actions[r];
  auto it = std::find(l.begin(), l.end(), a);
  REQUIRE(it != l.end());
  return static_cast<std::size_t>(it - l.begin());
}

}  // namespace

TEST_CASE("every generated schedule for K <= 8, M <= 32, v <= 4 passes the checker", "[schedule]") {
  int checked = 0;
  for (Kind kind : kAll)
    for (int K = 1; K <= 8; ++K)
      for (int M = 1; M <= 32; ++M)
        for (int v = 1; v <= (kind == Kind::interleaved ? 4 : 1); ++v)
          for (bool reduce : {false, true}) {
            INFO(kind_name(kind) << " K=" << K << " M=" << M << " v=" << v << " reduce_grad=" << reduce);
            const Schedule s = generate(kind, K, M, v, reduce);
            Report r;
            REQUIRE_NOTHROW(r = check(s));
            CHECK(r.bubble >= 0);
            CHECK(r.bubble < 1);
            ++checked;
          }
  CHECK(checked == 2 * 8 * 32 * (3 + 4));
}

TEST_CASE("every schedule has its textbook bubble; ZB-H1 under half of 1F1B's", "[schedule]") {
  for (int K : {2, 3, 4, 8})
    for (int M : {1, 2, 4, 8, 16, 32}) {
      INFO("K=" << K << " M=" << M);
      CHECK(check(generate(Kind::gpipe, K, M)).bubble == Approx(theory_bubble(Kind::gpipe, K, M)));
      CHECK(check(generate(Kind::one_f_one_b, K, M)).bubble == Approx(theory_bubble(Kind::one_f_one_b, K, M)));
      if (M % K == 0)
        for (int v : {2, 4}) {
          INFO("v=" << v);
          CHECK(check(generate(Kind::interleaved, K, M, v)).bubble ==
                Approx(theory_bubble(Kind::interleaved, K, M, v)));
        }
      const double zb = check(generate(Kind::zb_h1, K, M)).bubble;
      if (M >= K) {
        CHECK(zb == Approx(theory_bubble(Kind::zb_h1, K, M)));
        CHECK(zb <= 0.5 * theory_bubble(Kind::one_f_one_b, K, M));
      } else {
        CHECK(zb < theory_bubble(Kind::one_f_one_b, K, M));
      }
    }
}

TEST_CASE("interleaved with M not a multiple of K still beats 1F1B", "[schedule]") {
  // Megatron's fixed order needs M % K == 0; the simulated order must not lose to 1F1B.
  for (int K : {2, 3, 4, 8})
    for (int M : {3, 5, 6, 7, 9, 13, 30})
      for (int v : {2, 4}) {
        if (M % K == 0) continue;
        INFO("K=" << K << " M=" << M << " v=" << v);
        const double inter = check(generate(Kind::interleaved, K, M, v)).bubble;
        CHECK(inter <= check(generate(Kind::one_f_one_b, K, M)).bubble + 1e-9);
        CHECK(inter >= theory_bubble(Kind::interleaved, K, M, v) - 1e-9);
      }
}

TEST_CASE("under 1F1B stage i holds at most K-i micro-batches; GPipe holds all M", "[schedule]") {
  for (int K : {2, 4, 8})
    for (int M : {1, 3, 8, 32}) {
      INFO("K=" << K << " M=" << M);
      const auto one = check(generate(Kind::one_f_one_b, K, M)).peak_activations;
      const auto zb = check(generate(Kind::zb_h1, K, M)).peak_activations;
      const auto gp = check(generate(Kind::gpipe, K, M)).peak_activations;
      for (int i = 0; i < K; ++i) {
        CHECK(one[i] == std::min(K - i, M));
        // ZB-H1: 1F1B's in-flight limit between F and I, plus up to K - 1
        // deferred weight gradients whose inputs are still held.
        CHECK(zb[i] <= std::min(K - i + K - 1, M));
        CHECK(gp[i] == M);
      }
    }
}

TEST_CASE("1F1B for K = 2, M = 2 is the textbook instruction list", "[schedule]") {
  const Schedule s = generate(Kind::one_f_one_b, 2, 2);
  CHECK(to_text(s) ==
        "stage 0: F0 SEND_F0 F1 SEND_F1 RECV_B0 B0 RECV_B1 B1 STEP\n"
        "stage 1: RECV_F0 F0 B0 SEND_B0 RECV_F1 F1 B1 SEND_B1 STEP\n");
}

TEST_CASE("schedules print and parse as text, one line per stage", "[schedule]") {
  for (Kind kind : kAll)
    for (int K : {1, 2, 3})
      for (int M : {1, 4, 5}) {
        const int v = kind == Kind::interleaved ? 2 : 1;
        const Schedule s = generate(kind, K, M, v, true);
        const Schedule back = parse(to_text(s));
        INFO(to_text(s));
        CHECK(back.stages == K);
        CHECK(back.microbatches == M);
        CHECK(back.virtual_stages == v);
        CHECK(back.actions == s.actions);
      }
  // Written by hand: comments, blank lines, lower case, no "stage R:".
  const Schedule s = parse("# two stages, GPipe\n\nf0 send_f0 F1 SEND_F1 RECV_B0 B0 RECV_B1 B1 STEP\n"
                           "stage 1: RECV_F0 F0 RECV_F1 F1 B0 SEND_B0 B1 SEND_B1 STEP  # the last stage\n");
  CHECK(s.stages == 2);
  CHECK(s.microbatches == 2);
  CHECK_NOTHROW(check(s));
  CHECK(to_string(Action{Op::SEND_B, 3, 1}) == "SEND_B3@1");
  CHECK(parse_kind("zb-h1") == Kind::zb_h1);
  CHECK_THROWS_WITH(parse_kind("pipedream"), Catch::Contains("unknown schedule 'pipedream': one of gpipe, 1f1b"));
}

TEST_CASE("text that is not a schedule is refused, naming the line and the token", "[schedule]") {
  CHECK_THROWS_WITH(parse("stage 0: F0 FWD1 STEP\n"), Catch::Contains("schedule line 1 (stage 0): 'FWD1' is not an action"));
  CHECK_THROWS_WITH(parse("stage 0: F0 STEP\nstage 2: F0 STEP\n"),
                    Catch::Contains("schedule line 2: 'stage 2:' where 'stage 1:' was expected"));
  CHECK_THROWS_WITH(parse("F0 B STEP\n"), Catch::Contains("'B' is not an action"));
  CHECK_THROWS_WITH(parse("stage 0 F0 B0 STEP\n"),
                    Catch::Contains("schedule line 1: a stage header is 'stage 0:', with a colon"));
  CHECK_THROWS_WITH(parse("F0@x B0 STEP\n"), Catch::Contains("'F0@x' is not an action"));
  CHECK_THROWS_WITH(parse("# nothing\n"), Catch::Contains("no stages"));
  CHECK_THROWS_AS(parse("F0 Q0 STEP"), ScheduleError);
}

TEST_CASE("generators refuse what they cannot make, naming it", "[schedule]") {
  CHECK_THROWS_WITH(generate(Kind::one_f_one_b, 0, 4), Catch::Contains("at least 1 stage, got 0"));
  CHECK_THROWS_WITH(generate(Kind::one_f_one_b, 2, 0), Catch::Contains("at least 1 micro-batch, got 0"));
  CHECK_THROWS_WITH(generate(Kind::gpipe, 2, 4, 2), Catch::Contains("virtual_stages = 2 needs the interleaved schedule"));
}

TEST_CASE("mutated schedules are refused before launch, naming stage, action and micro-batch", "[schedule]") {
  SECTION("a backward missing") {
    Schedule s = generate(Kind::one_f_one_b, 3, 4);
    auto& l = s.actions[1];
    l.erase(l.begin() + static_cast<long>(index_of(s, 1, {Op::B, 2, 0})));
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 1: micro-batch 2 never goes backward (no B2, or I2 and W2)"));
  }
  SECTION("a forward twice") {
    Schedule s = generate(Kind::gpipe, 2, 3);
    replace(s, 0, {Op::F, 2, 0}, {Op::F, 1, 0});
    CHECK_THROWS_WITH(check(s), Catch::Contains("micro-batch 1 already had F at action"));
  }
  SECTION("a receive after its forward") {
    Schedule s = generate(Kind::one_f_one_b, 2, 4);
    auto& l = s.actions[1];
    const auto r = index_of(s, 1, {Op::RECV_F, 3, 0});
    std::swap(l[r], l[r + 1]);  // F3 RECV_F3
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 1, action " + std::to_string(r) +
                                                " (F3): its input arrives only later, at action " +
                                                std::to_string(r + 1) + " (RECV_F3)"));
  }
  SECTION("a send before what it sends is made") {
    Schedule s = generate(Kind::gpipe, 2, 2);
    auto& l = s.actions[0];
    std::swap(l[0], l[1]);  // SEND_F0 F0
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 0, action 0 (SEND_F0): sends its activation before it is made"));
  }
  SECTION("a receive with no send") {
    Schedule s = generate(Kind::gpipe, 2, 2);
    auto& l = s.actions[0];
    l.erase(l.begin() + static_cast<long>(index_of(s, 0, {Op::SEND_F, 1, 0})));
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 0, action 2 (F1): no SEND_F1 sends its activation"));
  }
  SECTION("a transfer to a stage that does not exist") {
    Schedule s = generate(Kind::gpipe, 2, 1);
    s.actions[1].insert(s.actions[1].begin() + 2, Action{Op::SEND_F, 0, 0});
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 1, action 2 (SEND_F0): nothing to transfer: the last model stage "
                                                "has no next stage"));
  }
  SECTION("send and receive swapped into a cycle between two stages") {
    // Stage 0 waits for micro-batch 0's gradient before sending micro-batch 1's
    // activation; stage 1 needs that activation before it sends the gradient.
    const Schedule s = parse("stage 0: F0 SEND_F0 F1 RECV_B0 B0 SEND_F1 RECV_B1 B1 STEP\n"
                             "stage 1: RECV_F0 F0 RECV_F1 F1 B0 SEND_B0 B1 SEND_B1 STEP\n");
    CHECK_THROWS_WITH(check(s), Catch::Contains("schedule can deadlock") &&
                                    Catch::Contains("stage 0, action 3 (RECV_B0) waits for stage 1") &&
                                    Catch::Contains("stage 1, action 2 (RECV_F1) waits for stage 0"));
  }
  SECTION("STEP not last, or missing") {
    Schedule s = generate(Kind::gpipe, 1, 2);
    s.actions[0].pop_back();
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 0: the last action must be STEP"));
    s.actions[0].insert(s.actions[0].begin(), Action{Op::STEP, -1, 0});
    s.actions[0].push_back(Action{Op::STEP, -1, 0});
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 0, action 0 (STEP): STEP must be the stage's last action"));
  }
  SECTION("REDUCE_GRAD before the last backward, or on some stages only") {
    Schedule s = generate(Kind::one_f_one_b, 2, 3, 1, true);
    auto& l = s.actions[1];
    const auto red = index_of(s, 1, {Op::REDUCE_GRAD, -1, 0});
    l.erase(l.begin() + static_cast<long>(red));
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 1: no REDUCE_GRAD"));
    l.insert(l.begin(), Action{Op::REDUCE_GRAD, -1, 0});
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 1, action 0 (REDUCE_GRAD): gradients reduced before the chunk's "
                                                "last backward"));
  }
  SECTION("split backward: W before I") {
    Schedule s = generate(Kind::zb_h1, 2, 2);
    auto& l = s.actions[1];
    const auto i = index_of(s, 1, {Op::I, 0, 0}), w = index_of(s, 1, {Op::W, 0, 0});
    std::swap(l[i], l[w]);
    CHECK_THROWS_WITH(check(s), Catch::Contains("stage 1") && Catch::Contains("weight gradient before the input gradient"));
  }
  SECTION("interleaved: a chunk's forward before the previous chunk's on the same actor (K = 1)") {
    Schedule s = generate(Kind::interleaved, 1, 2, 2);
    auto& l = s.actions[0];
    const auto a = index_of(s, 0, {Op::F, 0, 0}), b = index_of(s, 0, {Op::F, 0, 1});
    std::swap(l[a], l[b]);
    CHECK_THROWS_WITH(check(s), Catch::Contains("the previous chunk's forward F0@0 comes later"));
  }
}

TEST_CASE("the checker's timeline has every compute span, stage by stage without overlap", "[schedule]") {
  const Schedule s = generate(Kind::one_f_one_b, 4, 8);
  const Report r = check(s);
  CHECK(r.timeline.size() == 4u * 8u * 2u);
  std::vector<double> last_end(4, 0);
  for (const auto& sp : r.timeline) {
    CHECK(sp.start >= last_end[sp.stage]);
    last_end[sp.stage] = sp.end;
  }
  CHECK(*std::max_element(last_end.begin(), last_end.end()) == r.makespan);
  // Costs change the bubble: a slower backward is still one schedule.
  CHECK(check(s, Costs{.f = 1, .b = 3}).makespan > r.makespan);
}

TEST_CASE("gpipe, 1f1b and zb-h1 also run on a device group (transfers matched in posted order)", "[schedule]") {
  for (Kind kind : {Kind::gpipe, Kind::one_f_one_b, Kind::zb_h1})
    for (int K = 1; K <= 8; ++K)
      for (int M = 1; M <= 32; ++M) {
        INFO(kind_name(kind) << " K=" << K << " M=" << M);
        REQUIRE_NOTHROW(check_ordered(generate(kind, K, M, 1, true)));
      }
}

TEST_CASE("a schedule whose transfers NCCL would pair wrongly is refused for a device group", "[schedule]") {
  // Interleaved K = 2, v = 2: stage 0 sends F2 (its chunk 0's activation) to
  // stage 1 before B0@1 (its chunk 1's input gradient), but stage 1 takes the
  // gradient first. Tags keep them apart on host groups; one NCCL
  // communicator would hand stage 1 the activation as the gradient.
  const Schedule s = generate(Kind::interleaved, 2, 3, 2);
  REQUIRE_NOTHROW(check(s));
  REQUIRE_THROWS_WITH(check_ordered(s), Catch::Contains("stage 1, action 14 (RECV_B0)") &&
                                            Catch::Contains("receive SEND_F2 from stage 0"));
  // Two sends that face each other, each posted alone, wait in a circle: stage
  // 0's SEND_F1 for stage 1's RECV_F1, posted behind its SEND_B0, which waits
  // for stage 0's RECV_B0, posted behind SEND_F1 and SEND_F2.
  const Schedule crossed =
      parse("stage 0: F0 SEND_F0 F1 SEND_F1 F2 SEND_F2 RECV_B0 B0 RECV_B1 B1 RECV_B2 B2 STEP\n"
            "stage 1: RECV_F0 F0 I0 SEND_B0 W0 RECV_F1 F1 I1 SEND_B1 W1 RECV_F2 F2 I2 SEND_B2 W2 STEP\n");
  REQUIRE_NOTHROW(check(crossed));
  REQUIRE_THROWS_WITH(check_ordered(crossed), Catch::Contains("can deadlock on a device group") &&
                                                  Catch::Contains("stage 0, action 3 (SEND_F1) waits for stage 1") &&
                                                  Catch::Contains("stage 1, action 3 (SEND_B0) waits for stage 0"));
}
