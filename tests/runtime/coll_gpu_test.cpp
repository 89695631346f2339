// Collective groups on GPU buffers (label gpu): NCCL with one rank, and the
// device-local path for 2 to 4 ranks sharing one GPU (ranks as threads of one
// process here; across processes in the process suite), every operation
// against the CPU reference. Without a GPU only the errors are checked.
#include <catch2/catch.hpp>

#include "runtime/coll/detail/gpu.hpp"
#include "runtime/coll/group.hpp"
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

void every_op(Mesh<CollMember>& mesh, const std::vector<std::size_t>& sizes) {
  const auto W = mesh.size();
  for (std::size_t n : sizes) {
    for (bool heap : {false, true}) {
      for (int op = 0; op < 4; ++op) troupe::test::check_coll_case(mesh, dev({"allreduce", 0, n, op, 0, heap}));
      for (int dt = 1; dt < 7; ++dt) troupe::test::check_coll_case(mesh, dev({"allreduce", dt, n, 0, 0, heap}));
      troupe::test::check_coll_case(mesh, dev({"allreduce", 3, n, 1, 0, heap}));  // int64 avg
      troupe::test::check_coll_case(mesh, dev({"broadcast", 0, n, 0, static_cast<std::uint32_t>(W - 1), heap}));
    }
    troupe::test::check_coll_case(mesh, dev({"reduce_scatter", 0, n, 0}));
    troupe::test::check_coll_case(mesh, dev({"reduce_scatter", 2, n, 2}));
    troupe::test::check_coll_case(mesh, dev({"allgather", 1, n, 0}));
    troupe::test::check_coll_case(mesh, dev({"allgather", 4, n, 0}));
    troupe::test::check_coll_case(mesh, dev({"sendrecv", 0, n, 0}));
    troupe::test::check_coll_case(mesh, dev({"barrier", 0, 0, 0}));
  }
}

// Transfers of device buffers in batches, the way pipeline stages post them.
class BatchMember {
 public:
  /// Rank 0 posts one batch that sends to rank 1 and receives from it; rank 1
  /// first sends in a batch of its own, then receives in another. The batch's
  /// transfers must progress together, as in an NCCL group: run one at a
  /// time, rank 0 would wait in its send for rank 1's second batch while rank
  /// 1 waits in its first for rank 0's receive. n floats: several pieces.
  Task<bool> crossed(std::size_t n) {
    auto g = coll::group("g");
    const std::uint32_t me = g->rank(), peer = 1 - me;
    auto pattern = [n](std::uint32_t r) {
      std::vector<float> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(r * 100003u + i % 65521u);
      return v;
    };
    coll::gpu::DeviceBuffer out(n * sizeof(float)), in(n * sizeof(float));
    coll::gpu::copy_to_device(out.data(), pattern(me).data(), n * sizeof(float));
    std::span<const float> o(static_cast<const float*>(out.data()), n);
    std::span<float> i(static_cast<float*>(in.data()), n);
    if (me == 0) {
      co_await g->batch(coll::Group::Batch().send(o, peer).recv(i, peer));
    } else {
      co_await g->batch(coll::Group::Batch().send(o, peer));
      co_await g->batch(coll::Group::Batch().recv(i, peer));
    }
    std::vector<float> got(n);
    coll::gpu::copy_to_host(got.data(), in.data(), n * sizeof(float));
    co_return got == pattern(peer);
  }
  /// A host buffer in a device group's batch: refused before anything moves.
  Task<void> host_buffer() {
    auto g = coll::group("g");
    std::vector<float> host(16);
    co_await g->batch(coll::Group::Batch().send(std::span<const float>(host), 1 - g->rank()));
  }
};
TROUPE_ACTOR(BatchMember, crossed, host_buffer);

}  // namespace

TEST_CASE("gpu: cuda_local batches progress together as NCCL groups do; host buffers are refused", "[gpu]") {
  if (!gpu_or_warn()) return;
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<BatchMember>(2);
  coll::GroupOptions o = device_group(BackendKind::cuda_local);
  o.timeout_ms = 20000;  // a hang fails the case in 20 s, naming the ranks
  coll::create_group(rt, mesh, o);
  for (std::size_t n : {1u, 1000u, 700001u}) {
    auto a = mesh[0].call(&BatchMember::crossed, n);
    auto b = mesh[1].call(&BatchMember::crossed, n);
    CHECK(a.get(60s));
    CHECK(b.get(60s));
  }
  CHECK_THROWS_WITH(mesh[0].call(&BatchMember::host_buffer).get(30s), Catch::Contains("host memory"));
}

TEST_CASE("gpu: device groups without a usable GPU fail with a clear error, never hang", "[gpu]") {
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(1);
  if (!coll::gpu::built()) {
    CHECK_THROWS_WITH(coll::create_group(rt, mesh, device_group()), Catch::Contains("CUDA build"));
    return;
  }
  coll::GroupOptions o = device_group();
  o.devices = {97};  // no machine has a GPU 97
  coll::create_group(rt, mesh, o);
  // A group-allocated buffer: the group's own failure, before any user copy.
  CHECK_THROWS_WITH(mesh[0].call(&CollMember::run, dev({"allreduce", 0, 16, 0, 0, true})).get(30s),
                    Catch::Contains("device 97"));
}

TEST_CASE("gpu: create_group picks nccl or cuda_local from where the ranks' GPUs are", "[gpu]") {
  if (!coll::gpu::built()) return;
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(3);
  CHECK(coll::create_group(rt, mesh, device_group()).backend == BackendKind::cuda_local);  // all on GPU 0
  coll::GroupOptions o = device_group();
  o.devices = {0, 1, 2};
  CHECK(coll::create_group(rt, mesh, o).backend == BackendKind::nccl);
  o.devices = {0, 0, 1};
  CHECK_THROWS_WITH(coll::create_group(rt, mesh, o), Catch::Contains("ranks 0 and 1 share GPU 0"));
  CHECK_THROWS_WITH(coll::create_group(rt, mesh, device_group(BackendKind::nccl)), Catch::Contains("one GPU per rank"));
  o.devices = {0, 1, 2};
  o.backend = BackendKind::cuda_local;
  CHECK_THROWS_WITH(coll::create_group(rt, mesh, o), Catch::Contains("every rank on one GPU"));
  o.devices = {0, 1};
  CHECK_THROWS_WITH(coll::create_group(rt, mesh, o), Catch::Contains("2 devices given for 3 members"));
  CHECK_THROWS_WITH(coll::create_group(rt, mesh, device_group(BackendKind::shm)),
                    Catch::Contains("backend 'shm' does not take device buffers"));
}

TEST_CASE("gpu: NCCL with one rank runs every operation against the CPU reference", "[gpu]") {
  if (!gpu_or_warn()) return;
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(1);
  REQUIRE(coll::create_group(rt, mesh, device_group(BackendKind::nccl)).backend == BackendKind::nccl);
  every_op(mesh, {0, 1, 7, 1031, 300007});
  // Bad input: a host buffer, a root that is not a rank.
  CHECK_THROWS_WITH(mesh[0].call(&CollMember::run, CollCase{"allreduce", 0, 16, 0, 0, false, "g"}).get(30s),
                    Catch::Contains("host memory"));
  CHECK_THROWS_WITH(mesh[0].call(&CollMember::run, dev({"broadcast", 0, 16, 0, 3})).get(30s), Catch::Contains("root 3"));
}

TEST_CASE("gpu: ranks sharing one GPU (cuda_local) match the CPU reference for 2 to 4 ranks", "[gpu]") {
  if (!gpu_or_warn()) return;
  Runtime rt({.threads = 4});
  for (std::size_t W : {2u, 3u, 4u}) {
    auto mesh = rt.spawn_mesh<CollMember>(W);
    REQUIRE(coll::create_group(rt, mesh, device_group()).backend == BackendKind::cuda_local);
    every_op(mesh, W == 2 ? std::vector<std::size_t>{0, 1, 7, 1031, 300007} : std::vector<std::size_t>{0, 13, 300007});
    for (auto& m : mesh.members()) m.stop().get(10s);
  }
}

TEST_CASE("gpu: cuda_local ranks that disagree or pass host memory fail every rank, no hang", "[gpu]") {
  if (!gpu_or_warn()) return;
  Runtime rt({.threads = 3});
  auto mesh = rt.spawn_mesh<CollMember>(3);
  coll::create_group(rt, mesh, device_group(BackendKind::cuda_local));
  std::vector<Ref<std::vector<double>>> refs;
  for (std::size_t r = 0; r < 3; ++r) refs.push_back(mesh[r].call(&CollMember::run, dev({"allreduce", 0, r == 1 ? 9u : 10u, 0})));
  for (auto& ref : refs)
    CHECK_THROWS_WITH(ref.get(30s), Catch::Contains("ranks disagree") && Catch::Contains("float32 x 9"));
  auto mesh2 = rt.spawn_mesh<CollMember>(2);
  coll::create_group(rt, mesh2, device_group(BackendKind::cuda_local));
  CHECK_THROWS_WITH(mesh2[0].call(&CollMember::run, CollCase{"allreduce", 0, 16, 0, 0, false, "g"}).get(30s),
                    Catch::Contains("host memory"));
}
