// troupe-bench dp: data-parallel training of an MLP 784-1024-1024-10 on
// Fashion-MNIST, batch 128 per replica, SGD lr 0.05 momentum 0.9, 3 epochs,
// with 1 and 2 replicas in worker processes (one compute thread each), next
// to PyTorch DDP (gloo, one thread per process; tools/bench/dp_torch.py) with
// the same setting in the same run. samples/s count the wall time of the
// whole run, the per-epoch test evaluations included, on both sides.
#include <algorithm>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "actors/data/idx.hpp"
#include "tools/bench/report.hpp"
#include "trainers/data_parallel.hpp"

namespace troupe::bench {

namespace {

Row dp_row(const std::string& system, int replicas, int seed, double sps, double to_target, double acc) {
  Row r;
  r.set("system", system)
      .set("replicas", static_cast<std::int64_t>(replicas))
      .set("seed", static_cast<std::int64_t>(seed))
      .set("samples_per_s", sps)
      .set("seconds_to_0.86", to_target)
      .set("final_acc", acc);
  return r;
}

}  // namespace

std::vector<Row> dp_rows(const DpConfig& cfg, std::vector<std::string>& notes) {
  std::vector<Row> rows;
  dp::ReplicaConfig c;
  c.hidden = {1024, 1024};
  c.batch = 128;
  c.epochs = cfg.epochs;
  c.lr = 0.05f;
  c.momentum = 0.9f;
  c.threads = 1;
  // Final accuracy per (system, replicas), over the seeds.
  std::map<std::pair<std::string, int>, std::vector<double>> accs;
  const std::string py = peer_python();
  const bool torch = std::system(fmt::format("{} -c 'import torch' > /dev/null 2>&1", py).c_str()) == 0;
  for (int seed = 1; seed <= cfg.seeds; ++seed) {
    c.seed = static_cast<std::uint64_t>(seed);
    for (int n : cfg.replicas) {
      Runtime rt;
      dp::TrainerOptions o;
      o.replicas = n;
      o.chunk_steps = 100;
      double reached = -1;
      dp::DataParallelTrainer t(rt, c, o);
      auto r = t.fit([&](const dp::Progress& p) {
        if (p.evaluated && p.test_accuracy >= 0.86 && reached < 0) reached = p.elapsed_s;
      });
      rows.push_back(dp_row("troupe", n, seed, r.samples_per_s, reached, r.accuracy));
      accs[{"troupe", n}].push_back(r.accuracy);
    }
    if (!torch) continue;
    for (int n : cfg.replicas) {
      std::istringstream out(run_capture(fmt::format(
          "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 {} {} {} {} 128 0.05 0.9 0.86 {} 1024,1024 {} "
          "2>/dev/null",
          py, bench_script("dp_torch.py"), n, cfg.epochs, data::fashion_mnist_dir(), seed)));
      int replicas = 0;
      double sps = 0, reached = 0, acc = 0;
      if (out >> replicas >> sps >> reached >> acc) {
        rows.push_back(dp_row("torch_ddp", replicas, seed, sps, reached, acc));
        accs[{"torch_ddp", n}].push_back(acc);
      } else {
        notes.push_back(fmt::format("torch_ddp row for {} replicas, seed {} failed to run", n, seed));
      }
    }
  }
  if (!torch) notes.push_back("torch_ddp rows skipped: python3-torch is not installed (tools/install-peers.sh)");
  if (cfg.seeds > 1)
    for (const auto& [key, v] : accs) {
      double mean = 0, lo = 1, hi = 0;
      for (double a : v) mean += a / static_cast<double>(v.size()), lo = std::min(lo, a), hi = std::max(hi, a);
      notes.push_back(fmt::format("final_acc {} {} replica(s) over {} seeds: mean {:.4f} (min {:.4f}, max {:.4f})",
                                  key.first, key.second, v.size(), mean, lo, hi));
    }
  notes.push_back(fmt::format(
      "MLP 784-1024-1024-10, Fashion-MNIST (60k), batch 128 per replica, SGD lr 0.05 momentum 0.9, {} epochs, "
      "one thread per replica; seed: initialisation and data order on both sides (not the same random numbers); "
      "seconds_to_0.86: first epoch end at or above 0.86 test accuracy (-1: never)",
      cfg.epochs));
  return rows;
}

}  // namespace troupe::bench
