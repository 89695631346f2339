// Device groups across worker processes (label gpu): ranks in separate
// processes sharing one GPU reach each other's buffers through CUDA IPC
// (cuda_local); every operation against the CPU reference, and a rank killed
// with -9 mid-allreduce fails the others, naming it. Without a GPU it checks
// nothing (CollMember is registered in coll_itest.cpp, in the same binary).
#include <catch2/catch.hpp>

#include <set>
#include <thread>

#include "tests/support/coll_member.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using coll::BackendKind;
using troupe::test::CollCase;
using troupe::test::CollMember;

namespace {
using troupe::test::device_group;
using troupe::test::gpu_or_warn;
CollCase dev(CollCase c) { return troupe::test::on_device(c); }
}  // namespace

TEST_CASE("gpu: worker processes sharing one GPU (CUDA IPC) match the CPU reference", "[gpu][process]") {
  if (!gpu_or_warn()) return;
  Runtime rt({.threads = 2});
  for (std::size_t W : {2u, 3u}) {
    auto mesh = rt.spawn_mesh<CollMember>(W, Options{}.process());
    REQUIRE(coll::create_group(rt, mesh, device_group(BackendKind::cuda_local)).backend == BackendKind::cuda_local);
    for (std::size_t n : {0ul, 13ul, (1ul << 19) + 3}) {
      for (bool heap : {false, true}) {
        troupe::test::check_coll_case(mesh, dev({"allreduce", 0, n, 1, 0, heap}));
        troupe::test::check_coll_case(mesh, dev({"allreduce", 3, n, 2, 0, heap}));
        troupe::test::check_coll_case(mesh, dev({"broadcast", 1, n, 0, 1, heap}));
      }
      troupe::test::check_coll_case(mesh, dev({"reduce_scatter", 0, n, 0}));
      troupe::test::check_coll_case(mesh, dev({"allgather", 2, n, 0}));
      troupe::test::check_coll_case(mesh, dev({"sendrecv", 4, n, 0}));
    }
    auto pids = mesh.call(&CollMember::pid).get(10s);
    CHECK(std::set<int>(pids.begin(), pids.end()).size() == W);
  }
}

TEST_CASE("gpu: a worker killed with -9 mid-allreduce fails the device group's other ranks", "[gpu][process]") {
  if (!gpu_or_warn()) return;
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(3, Options{}.process().name("m"));
  coll::create_group(rt, mesh, device_group(BackendKind::cuda_local));
  auto a = mesh[0].call(&CollMember::run, dev({"allreduce", 0, 1000, 0, 0, true}));
  auto b = mesh[1].call(&CollMember::run, dev({"allreduce", 0, 1000, 0, 0, true}));
  std::this_thread::sleep_for(300ms);
  mesh[2].kill();
  CHECK_THROWS_WITH(a.get(30s), Catch::Contains("rank 2"));
  CHECK_THROWS_WITH(b.get(30s), Catch::Contains("rank 2"));
}
