// Collective groups across worker processes on one host (shared memory):
// every operation against the CPU reference for 2 and 4 process ranks, and a
// member killed with -9 in the middle of an allreduce.
#include <catch2/catch.hpp>

#include <signal.h>

#include <set>
#include <thread>

#include "tests/support/coll_member.hpp"
#include "tests/support/eventually.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using troupe::test::CollCase;
using troupe::test::CollMember;

TROUPE_ACTOR(CollMember, run, pid, init);

namespace {
coll::GroupOptions opts(coll::BackendKind backend = coll::BackendKind::automatic) {
  coll::GroupOptions o;
  o.name = "t";
  o.backend = backend;
  o.staging_bytes = 256 * 1024;
  o.heap_bytes = 256ull << 20;
  o.timeout_ms = 30000;
  return o;
}

}  // namespace

TEST_CASE("collectives across worker processes match the CPU reference", "[coll][process]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  for (std::size_t W : {2u, 4u}) {
    auto mesh = rt.spawn_mesh<CollMember>(W, Options{}.process());
    coll::create_group(rt, mesh, opts(backend));
    for (std::size_t n : {0ul, 1ul, 13ul, 65537ul, (1ul << 20) + 3}) {
      for (bool heap : {false, true}) {
        troupe::test::check_coll_case(mesh, {"allreduce", 0, n, 0, 0, heap});
        troupe::test::check_coll_case(mesh, {"allreduce", 3, n, 1, 0, heap});
        troupe::test::check_coll_case(mesh, {"broadcast", 1, n, 0, 1, heap});
      }
      troupe::test::check_coll_case(mesh, {"reduce_scatter", 0, n, 2});
      troupe::test::check_coll_case(mesh, {"allgather", 2, n, 0});
      troupe::test::check_coll_case(mesh, {"sendrecv", 4, n, 0});
    }
    // Every rank really is its own process.
    auto pids = mesh.call(&CollMember::pid).get(10s);
    CHECK(std::set<int>(pids.begin(), pids.end()).size() == W);
  }
}

TEST_CASE("worker processes form a group with init_group from inside their actors", "[coll][process]") {
  const auto backend = GENERATE(coll::BackendKind::automatic, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(3, Options{}.process());
  auto o = opts(backend);
  o.name = "inner";
  std::vector<Ref<std::string>> joined;
  for (std::uint32_t r = 0; r < 3; ++r) joined.push_back(mesh[r].call(&CollMember::init, 3u, r, o));
  const auto expect = backend == coll::BackendKind::automatic ? coll::BackendKind::shm : coll::BackendKind::tcp;
  for (std::uint32_t r = 0; r < 3; ++r) CHECK(joined[r].get(30s) == fmt::format("{}/3/{}", r, expect));
  for (std::size_t n : {13ul, 65537ul}) {
    CollCase c{"allreduce", 0, n, 1};
    c.group = "inner";
    troupe::test::check_coll_case(mesh, c);
  }
  // A worker killed with -9: the others' next operation fails naming it.
  const int victim = mesh[1].call(&CollMember::pid).get(10s);
  auto a = mesh[0].call(&CollMember::run, CollCase{"allreduce", 0, 4096, 0, 0, false, "inner"});
  auto b = mesh[2].call(&CollMember::run, CollCase{"allreduce", 0, 4096, 0, 0, false, "inner"});
  std::this_thread::sleep_for(100ms);
  ::kill(victim, SIGKILL);
  CHECK_THROWS_WITH(a.get(20s), Catch::Contains("rank 1"));
  CHECK_THROWS_WITH(b.get(20s), Catch::Contains("rank 1"));
}

TEST_CASE("a worker killed with -9 mid-allreduce fails the other ranks, naming it", "[coll][process]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(3, Options{}.process().max_restarts(1));
  coll::create_group(rt, mesh, opts(backend));
  REQUIRE(mesh.call(&CollMember::run, CollCase{"barrier", 0, 0, 0}).get(20s).size() == 3);
  const int victim = mesh[2].call(&CollMember::pid).get(10s);
  auto a = mesh[0].call(&CollMember::run, CollCase{"allreduce", 0, 4096, 0});
  auto b = mesh[1].call(&CollMember::run, CollCase{"allreduce", 0, 4096, 0});
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(victim, SIGKILL);
  CHECK_THROWS_WITH(a.get(20s), Catch::Contains("rank 2") && Catch::Contains("died"));
  CHECK_THROWS_WITH(b.get(20s), Catch::Contains("rank 2") && Catch::Contains("died"));
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  // The restarted member and the survivors form the group again. A call that
  // reached the killed worker before its exit was known fails (no call
  // retries asked for); the restarted worker answers the next.
  troupe::test::eventually([&]() {
    try {
      return mesh[2].call(&CollMember::pid).get(20s) != victim;
    } catch (const ActorDied& e) {
      CHECK_THAT(e.detail(), Catch::Contains("signal 9"));
      return false;
    }
  });
  coll::create_group(rt, mesh, opts(backend));
  troupe::test::check_coll_case(mesh, {"allreduce", 0, 1000, 0});
}
