#include "trainers/data_parallel.hpp"

#include <fmt/format.h>

#include "runtime/coll/create.hpp"

namespace troupe::dp {

DataParallelTrainer::DataParallelTrainer(Runtime& rt, ReplicaConfig cfg, TrainerOptions opts)
    : rt_(rt), cfg_(std::move(cfg)), opts_(std::move(opts)) {
  if (opts_.replicas < 1) throw UsageError(fmt::format("data parallel: {} replicas (at least 1)", opts_.replicas));
  if (opts_.chunk_steps < 1) throw UsageError("data parallel: chunk_steps must be at least 1");
}

FitResult DataParallelTrainer::fit(const std::function<void(const Progress&)>& on_progress) {
  using namespace std::chrono;
  const auto replicas = static_cast<std::size_t>(opts_.replicas);
  Options o = opts_.actor_options;
  if (opts_.processes) o.process();
  auto mesh = rt_.spawn_mesh<Replica>(replicas, cfg_, o);
  coll::GroupOptions g;
  g.name = cfg_.group;
  coll::create_group(rt_, mesh, g);
  const auto limit = minutes(30);
  mesh.call(&Replica::setup).get(limit);
  const std::int64_t per_epoch = mesh[0].call(&Replica::steps_per_epoch).get(limit);
  const std::int64_t total = per_epoch * cfg_.epochs;
  FitResult r;
  const auto start = steady_clock::now();
  std::int64_t samples = 0;
  while (r.steps < total) {
    const std::int64_t n = std::min(opts_.chunk_steps, total - r.steps);
    auto chunks = mesh.call(&Replica::train, n).get(limit);
    for (std::int64_t k = 0; k < n; ++k) {
      double loss = 0;
      for (auto& c : chunks) {
        loss += c.at(static_cast<std::size_t>(k)).loss;
        samples += c[static_cast<std::size_t>(k)].samples;
      }
      r.losses.push_back(static_cast<float>(loss / static_cast<double>(replicas)));
    }
    r.steps += n;
    // Every replica applied the same averaged gradients: any difference is a bug, not noise.
    auto hashes = mesh.call(&Replica::param_hash).get(limit);
    for (std::size_t i = 1; i < hashes.size(); ++i)
      if (hashes[i] != hashes[0])
        throw Error(fmt::format("data parallel: replica {} parameters differ from replica 0's after step {}", i, r.steps));
    if (on_progress) {
      const auto& last = chunks[0].back();
      Progress p;
      p.step = r.steps;
      p.total_steps = total;
      p.epoch = last.epoch;
      p.loss = r.losses.back();
      p.lr = last.lr;
      p.elapsed_s = duration<double>(steady_clock::now() - start).count();
      p.samples_per_s = p.elapsed_s > 0 ? static_cast<double>(samples) / p.elapsed_s : 0;
      on_progress(p);
    }
  }
  r.seconds = duration<double>(steady_clock::now() - start).count();
  r.samples_per_s = r.seconds > 0 ? static_cast<double>(samples) / r.seconds : 0;
  auto e = mesh[0].call(&Replica::evaluate, opts_.eval_limit).get(limit);
  r.accuracy = e.total ? static_cast<double>(e.correct) / static_cast<double>(e.total) : 0;
  r.test_loss = e.loss;
  return r;
}

}  // namespace troupe::dp
