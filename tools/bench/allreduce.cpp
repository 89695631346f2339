// troupe-bench allreduce: ranks in worker processes on this host, a shared-
// memory group, allreduce of float32 from 4 KiB to 256 MiB, with buffers the
// group allocates ("troupe", reduced in place) and with the ranks' own
// buffers ("troupe_user"); next to torch.distributed's gloo and OpenMPI when
// they are installed. busbw as nccl-tests: bytes / time x 2(n-1)/n.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "runtime/coll/create.hpp"
#include "runtime/troupe.hpp"
#include "tools/bench/report.hpp"

namespace troupe::bench {

class AllreduceMember {
 public:
  AllreduceMember() = default;
  /// Times `iters` allreduces of `bytes` (after a warm-up) on this rank.
  std::vector<double> run(std::uint64_t bytes, bool heap, int iters, std::uint64_t max_bytes) {
    auto g = coll::group("bench");
    const std::size_t max_n = max_bytes / sizeof(float), n = bytes / sizeof(float);
    if (heap && heap_.empty()) heap_ = g->alloc<float>(max_n).get();
    if (!heap && user_.size() < max_n) user_.assign(max_n, 0.0f);
    std::span<float> buf = heap ? heap_.subspan(0, n) : std::span<float>(user_).subspan(0, n);
    for (auto& x : buf) x = 0.5f;
    g->barrier().get();
    for (int i = 0; i < std::max(2, iters / 10); ++i) g->allreduce(buf).get();
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(iters));
    for (int i = 0; i < iters; ++i) {
      auto t0 = Clock::now();
      g->allreduce(buf).get();
      us.push_back(micros(Clock::now() - t0));
    }
    return us;
  }

 private:
  std::span<float> heap_;
  std::vector<float> user_;
};

}  // namespace troupe::bench

TROUPE_ACTOR(troupe::bench::AllreduceMember, run);

namespace troupe::bench {

namespace {

int iterations_for(std::uint64_t bytes) {
  const double budget = 3e8;  // bytes moved per size, about
  return static_cast<int>(std::clamp(budget / static_cast<double>(bytes), 5.0, 2000.0));
}

double busbw_gbps(std::uint64_t bytes, double us, std::size_t ranks) {
  const double algbw = static_cast<double>(bytes) / (us * 1e-6) / 1e9;
  return algbw * 2.0 * static_cast<double>(ranks - 1) / static_cast<double>(ranks);
}

Row row(const std::string& system, std::size_t ranks, std::uint64_t bytes, double p50) {
  Row r;
  r.set("system", system)
      .set("ranks", static_cast<std::int64_t>(ranks))
      .set("bytes", static_cast<std::int64_t>(bytes))
      .set("busbw_gbps", busbw_gbps(bytes, p50, ranks))
      .set("p50_us", p50);
  return r;
}

std::string sizes_arg(const std::vector<std::uint64_t>& sizes) {
  std::string s;
  for (auto b : sizes) s += fmt::format("{}{}", s.empty() ? "" : ",", b);
  return s;
}

// Lines "bytes p50_us" from a peer's program.
void parse_peer(const std::string& out, const std::string& system, std::size_t ranks, std::vector<Row>& rows) {
  std::istringstream in(out);
  std::uint64_t bytes = 0;
  double p50 = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    if (l >> bytes >> p50 && p50 > 0) rows.push_back(row(system, ranks, bytes, p50));
  }
}

std::string here() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::filesystem::path(std::string(buf, static_cast<std::size_t>(n))).parent_path().string() : ".";
}

}  // namespace

std::vector<Row> allreduce_rows(const AllreduceConfig& cfg, std::vector<std::string>& notes) {
  std::vector<Row> rows;
  const std::uint64_t max_bytes = cfg.sizes.back();
  for (std::size_t W : cfg.ranks) {
    Runtime rt({.threads = 2});
    auto mesh = rt.spawn_mesh<AllreduceMember>(W, Options{}.process());
    coll::GroupOptions o;
    o.name = "bench";
    o.heap_bytes = (max_bytes + (1u << 20)) * W;
    coll::create_group(rt, mesh, o);
    for (bool heap : {true, false})
      for (auto bytes : cfg.sizes) {
        const int iters = iterations_for(bytes);
        auto all = mesh.call(&AllreduceMember::run, bytes, heap, iters, max_bytes).get(std::chrono::minutes(10));
        rows.push_back(row(heap ? "troupe" : "troupe_user", W, bytes, percentile(all[0], 50)));
      }
    // The TCP ring (what groups across hosts use), here over loopback: the
    // figure to hold against gloo, which has no shared-memory transport.
    o.backend = coll::BackendKind::tcp;
    coll::create_group(rt, mesh, o);
    for (auto bytes : cfg.sizes) {
      const int iters = iterations_for(bytes);
      auto all = mesh.call(&AllreduceMember::run, bytes, false, iters, max_bytes).get(std::chrono::minutes(10));
      rows.push_back(row("troupe_tcp", W, bytes, percentile(all[0], 50)));
    }
  }
  // torch.distributed with gloo (python3-torch), one thread per process.
  const std::string py = peer_python();
  const std::string script = bench_script("allreduce_torch.py");
  if (std::system(fmt::format("{} -c 'import torch' > /dev/null 2>&1", py).c_str()) == 0) {
    for (std::size_t W : cfg.ranks)
      parse_peer(run_capture(fmt::format("{} {} {} {} 2>/dev/null", py, script, W, sizes_arg(cfg.sizes))), "gloo", W,
                 rows);
  } else {
    notes.push_back("gloo rows skipped: python3-torch is not installed (tools/install-peers.sh)");
  }
  // OpenMPI's MPI_Allreduce.
  const std::string mpi_bin = here() + "/troupe-bench-mpi";
  if (std::filesystem::exists(mpi_bin) && std::system("command -v mpirun > /dev/null 2>&1") == 0) {
    for (std::size_t W : cfg.ranks)
      parse_peer(run_capture(fmt::format("mpirun --allow-run-as-root --oversubscribe -np {} {} {} 2>/dev/null", W,
                                         mpi_bin, sizes_arg(cfg.sizes))),
                 "mpi", W, rows);
  } else {
    notes.push_back("mpi rows skipped: OpenMPI (mpirun, libopenmpi-dev at build time) is not installed");
  }
  notes.push_back("busbw = bytes / p50 time x 2(n-1)/n (nccl-tests); troupe: group-allocated buffers reduced in "
                  "place (shared memory); troupe_user: the ranks' own buffers (shared memory); troupe_tcp: the "
                  "TCP ring over loopback (the cross-host backend)");
  return rows;
}

}  // namespace troupe::bench
