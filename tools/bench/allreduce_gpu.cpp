// troupe-bench allreduce-gpu: allreduce of float32 device buffers on one GPU.
//   nccl               a raw ncclAllReduce on one rank (the floor for troupe's NCCL path)
//   troupe             the same through a troupe group (backend nccl, group-allocated buffer)
//   troupe_cuda_local  2 and 4 ranks sharing the GPU (which NCCL refuses), group-allocated
//   troupe_cuda_local_user  the same on the ranks' own cudaMalloc buffers
// "pipelined": K operations issued back to back, then one wait; "sync": each
// operation waited for before the next is issued.
#include <chrono>
#include <deque>

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

// Raw CUDA and NCCL through the CUDA plugin too: the bench links neither.
#include "runtime/coll/detail/nccl_api.hpp"

#include "runtime/coll/create.hpp"
#include "runtime/coll/detail/gpu.hpp"
#include "runtime/device.hpp"
#include "runtime/troupe.hpp"
#include "tools/bench/report.hpp"

namespace troupe::bench {

using coll::gpu::cu;
using coll::gpu::nc;

namespace {

constexpr double kMinSeconds = 0.3;

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(fmt::format("{}: {}", what, cu().cudaGetErrorString(e)));
}
void nccl_ok(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(fmt::format("{}: {}", what, nc().ncclGetErrorString(r)));
}

// Runs `batch(k)` (k operations, then a wait) until kMinSeconds have passed; microseconds per operation.
template <class F>
double per_op_us(F&& batch) {
  batch(5);  // warm-up
  int k = 10;
  for (;;) {
    const auto t0 = Clock::now();
    batch(k);
    const double us = micros(Clock::now() - t0);
    if (us >= kMinSeconds * 1e6 || k >= 100000) return us / k;
    k *= 4;
  }
}

double raw_nccl_us(std::size_t bytes, ncclRedOp_t op, bool pipelined) {
  ncclComm_t comm;
  int dev = 0;
  nccl_ok(nc().ncclCommInitAll(&comm, 1, &dev), "ncclCommInitAll");
  cudaStream_t s;
  cuda_ok(cu().cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  coll::gpu::DeviceBuffer buf(bytes);
  cuda_ok(cu().cudaMemset(buf.data(), 0, bytes), "cudaMemset");
  const double us = per_op_us([&](int k) {
    for (int i = 0; i < k; ++i) {
      nccl_ok(nc().ncclAllReduce(buf.data(), buf.data(), bytes / 4, ncclFloat32, op, comm, s), "ncclAllReduce");
      if (!pipelined) cuda_ok(cu().cudaStreamSynchronize(s), "sync");
    }
    cuda_ok(cu().cudaStreamSynchronize(s), "sync");
  });
  cu().cudaStreamDestroy(s);
  nc().ncclCommDestroy(comm);
  return us;
}

// A group member that times allreduces on its own buffers.
class Bencher {
 public:
  Task<double> run(std::size_t bytes, int op, bool pipelined, bool user) {
    auto g = coll::group("bench");
    std::span<float> buf;
    if (user) {
      own_.emplace_back(bytes);
      buf = std::span<float>(static_cast<float*>(own_.back().data()), bytes / 4);
    } else {
      buf = co_await g->alloc<float>(bytes / 4);
    }
    auto batch = [&](int k) -> Task<void> {
      if (pipelined) {
        std::vector<Ref<void>> refs;
        for (int i = 0; i < k; ++i) refs.push_back(g->allreduce(buf, static_cast<coll::Op>(op)));
        for (auto& r : refs) co_await r;
      } else {
        for (int i = 0; i < k; ++i) co_await g->allreduce(buf, static_cast<coll::Op>(op));
      }
    };
    co_await batch(5);
    int k = 10;
    for (;;) {
      // Every rank must run the same number of operations: rank 0's timing decides, the others follow.
      const auto t0 = Clock::now();
      co_await batch(k);
      const double us = micros(Clock::now() - t0);
      std::vector<std::int32_t> more{us < kMinSeconds * 1e6 && k < 100000 ? 1 : 0};
      co_await g->broadcast(std::span<std::int32_t>(gate(more[0])), 0);
      if (!gate_host()) {
        own_.clear();
        co_return us / k;
      }
      k *= 4;
    }
  }

 private:
  // A one-element device flag for rank 0's decision.
  std::span<std::int32_t> gate(std::int32_t v) {
    if (!flag_) flag_.emplace(sizeof(std::int32_t));
    coll::gpu::copy_to_device(flag_->data(), &v, sizeof v);
    return {static_cast<std::int32_t*>(flag_->data()), 1};
  }
  bool gate_host() {
    std::int32_t v = 0;
    coll::gpu::copy_to_host(&v, flag_->data(), sizeof v);
    return v != 0;
  }
  std::deque<coll::gpu::DeviceBuffer> own_;
  std::optional<coll::gpu::DeviceBuffer> flag_;
};

Row row(const std::string& system, std::size_t ranks, std::size_t bytes, const char* op, const char* mode, double us) {
  Row r;
  const double algbw = bytes / (us * 1e-6) / 1e9;
  r.set("system", system)
      .set("ranks", static_cast<std::int64_t>(ranks))
      .set("bytes", static_cast<std::int64_t>(bytes))
      .set("op", std::string(op))
      .set("mode", std::string(mode))
      .set("us_per_op", us)
      .set("algbw_gbps", algbw)
      .set("busbw_gbps", algbw * 2.0 * (ranks - 1) / ranks);
  return r;
}

}  // namespace

std::vector<Row> allreduce_gpu_rows(const AllreduceConfig& cfg, std::vector<std::string>& notes) {
  std::vector<Row> rows;
  if (devices().gpus.empty()) {
    notes.push_back(fmt::format("no rows: no CUDA device here ({})", devices().status));
    return rows;
  }
  std::vector<std::uint64_t> sizes;
  for (auto b : cfg.sizes)
    if (b >= (1u << 20)) sizes.push_back(b);
  Runtime rt({.threads = 4});
  // One rank: raw NCCL next to troupe's NCCL group.
  {
    auto one = rt.spawn_mesh<Bencher>(1);
    coll::GroupOptions o;
    o.name = "bench";
    o.memory = coll::Memory::cuda;
    o.backend = coll::BackendKind::nccl;
    coll::create_group(rt, one, o);
    for (auto b : sizes)
      for (auto [op, nop, name] : {std::tuple{0, ncclSum, "sum"}, std::tuple{1, ncclAvg, "avg"}})
        for (bool pipelined : {true, false}) {
          const char* mode = pipelined ? "pipelined" : "sync";
          const double raw = raw_nccl_us(b, nop, pipelined);
          const double ours = one.call(&Bencher::run, b, op, pipelined, false).get(std::chrono::minutes(2))[0];
          rows.push_back(row("nccl", 1, b, name, mode, raw).set("vs_nccl", 1.0));
          rows.push_back(row("troupe", 1, b, name, mode, ours).set("vs_nccl", raw / ours));
        }
  }
  // Ranks sharing the GPU.
  for (std::size_t W : {2u, 4u}) {
    if (cfg.ranks.size() == 1 && cfg.ranks[0] != W) continue;
    auto mesh = rt.spawn_mesh<Bencher>(W);
    coll::GroupOptions o;
    o.name = "bench";
    o.memory = coll::Memory::cuda;
    o.backend = coll::BackendKind::cuda_local;
    o.staging_bytes = 64ull << 20;
    coll::create_group(rt, mesh, o);
    for (auto b : sizes)
      for (bool user : {false, true}) {
        auto got = mesh.call(&Bencher::run, b, 0, false, user).get(std::chrono::minutes(2));
        rows.push_back(row(user ? "troupe_cuda_local_user" : "troupe_cuda_local", W, b, "sum", "sync", got[0]));
      }
  }
  notes.push_back("float32 on one GPU; algbw = bytes / time, busbw = algbw x 2(n-1)/n (nccl-tests); "
                  "vs_nccl = raw NCCL time / troupe time (1.0 = as fast)");
  return rows;
}

}  // namespace troupe::bench
