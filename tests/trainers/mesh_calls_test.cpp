// call_all, the trainers' way of calling every worker of a mesh: a member
// that is stuck (stopped, hung) fails the call within a bounded time and is
// killed, whether the others failed or answered.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "runtime/troupe.hpp"
#include "trainers/detail/mesh_calls.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

std::atomic<bool> released{false};

class Member {
 public:
  /// Rank `stuck` hangs (until released, 20 s at most); rank `fails` throws;
  /// the others answer their rank.
  int answer(int rank, int stuck, int fails) {
    if (rank == fails) throw std::runtime_error("rank " + std::to_string(rank) + " failed");
    if (rank == stuck) {
      const auto until = std::chrono::steady_clock::now() + 20s;
      while (!released.load() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    }
    return rank;
  }
};
TROUPE_ACTOR(Member, answer);

struct Released {
  ~Released() { released = true; }  // the stuck method ends with the case
};

template <class M>
auto ask(M& mesh, int stuck, int fails, std::chrono::milliseconds limit, std::chrono::milliseconds grace, bool tied) {
  int rank = 0;
  return train::detail::call_all<int>(
      mesh, [&](auto& m) { return m.call(&Member::answer, rank++, stuck, fails); }, limit, grace, tied);
}

}  // namespace

TEST_CASE("call_all: members tied by collectives that answer give every answer, in order", "[mesh_calls]") {
  Runtime rt({.threads = 3});
  auto mesh = rt.spawn_mesh<Member>(3);
  CHECK(ask(mesh, -1, -1, 10s, 200ms, true) == std::vector<int>{0, 1, 2});
}

TEST_CASE("call_all: once a tied member has answered, one that does not is stuck, killed and named", "[mesh_calls]") {
  released = false;
  Runtime rt({.threads = 3});
  Released end;  // (before the runtime's shutdown)
  auto mesh = rt.spawn_mesh<Member>(3);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    ask(mesh, 1, -1, 60s, 300ms, true);
    FAIL("a stuck member went unnoticed");
  } catch (const Error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK_THAT(what, Catch::Contains(fmt::format("actor {} answered", mesh[0].id())));
    CHECK_THAT(what, Catch::Contains(fmt::format("actor {} had not", mesh[1].id())));
    CHECK_THAT(what, Catch::Contains("stuck (stopped or hung) and was killed"));
  }
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);  // not the 60 s limit: the bound is grace past the answer
  CHECK_FALSE(mesh[1].alive());
  CHECK(mesh[0].alive());
  CHECK(mesh[2].alive());
}

TEST_CASE("call_all: untied members may take their time, up to the limit", "[mesh_calls]") {
  released = false;
  Runtime rt({.threads = 3});
  Released end;  // (before the runtime's shutdown)
  auto mesh = rt.spawn_mesh<Member>(3);
  // Loading a checkpoint: one member's part may take far longer than another's.
  CHECK_THROWS_AS(ask(mesh, 1, -1, 600ms, 100ms, false), TimeoutError);
  CHECK(mesh[1].alive());  // past the limit the call fails; no member is judged stuck
}

TEST_CASE("call_all: once a member has failed, one that does not settle is killed and named with the failure",
          "[mesh_calls]") {
  released = false;
  Runtime rt({.threads = 3});
  Released end;  // (before the runtime's shutdown)
  auto mesh = rt.spawn_mesh<Member>(3);
  try {
    ask(mesh, 2, 0, 60s, 300ms, false);
    FAIL("the failure was lost");
  } catch (const Error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK_THAT(what, Catch::Contains("rank 0 failed"));
    CHECK_THAT(what, Catch::Contains(fmt::format("actor {} did not answer within 0.3 s after that and was killed",
                                                 mesh[2].id())));
  }
  CHECK_FALSE(mesh[2].alive());
}
