#include "trainers/data_parallel.hpp"

#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/coll/create.hpp"
#include "runtime/device.hpp"
#include "trainers/detail/mesh_calls.hpp"

namespace troupe::dp {

namespace fs = std::filesystem;

DataParallelTrainer::DataParallelTrainer(Runtime& rt, ReplicaConfig cfg, TrainerOptions opts)
    : rt_(rt), cfg_(std::move(cfg)), opts_(std::move(opts)), device_(replica_device(cfg_.device)) {
  if (opts_.replicas < 1) throw UsageError(fmt::format("data parallel: {} replicas (at least 1)", opts_.replicas));
  if (opts_.chunk_steps < 1) throw UsageError("data parallel: chunk_steps must be at least 1");
  if (opts_.checkpoint_every < 0) throw UsageError("data parallel: checkpoint_every cannot be negative");
  if (opts_.max_failures < -1)
    throw UsageError(fmt::format("data parallel: max_failures {}: at least 0, or -1 for no limit", opts_.max_failures));
  if (device_.is_cuda() && opts_.processes && cfg_.device != train::DeviceChoice::cuda())
    throw UsageError(fmt::format("data parallel: device '{}' with replicas in worker processes: each worker trains on "
                                 "the GPU it was given; say \"cuda\" (DeviceChoice::cuda()), with no index",
                                 cfg_.device));
  // Everything that would fail in every replica fails here, once, before a
  // replica is spawned: the device (replicas in this process), the data
  // files (replicas on this machine: in this process or the embedded cluster).
  check_config(cfg_, {.devices_here = !opts_.processes,
                      .data_here = !opts_.processes || rt_.cluster_address().empty()});
  // A train_limit below one global batch would run no step at all.
  const std::int64_t per_step = opts_.replicas * cfg_.batch * cfg_.accumulation;
  if (cfg_.train_limit > 0 && (cfg_.train_limit + opts_.replicas - 1) / opts_.replicas <
                                  cfg_.batch * cfg_.accumulation)
    throw UsageError(fmt::format(
        "data parallel: train_limit {} ([data] train_limit) is less than one step: {} replicas x batch {} x "
        "accumulation {} = {} examples; no step would run (raise train_limit, or lower replicas, batch or "
        "accumulation)",
        cfg_.train_limit, opts_.replicas, cfg_.batch, cfg_.accumulation, per_step));
  // A GPU replica in a worker process trains on the GPU placement gives its
  // worker: one whole GPU unless the caller asked for a share.
  if (device_.is_cuda() && opts_.processes && opts_.actor_options.gpus_ <= 0) opts_.actor_options.gpus(1);
}

std::string DataParallelTrainer::checkpoint_path() const {
  // Absolute, as the driver sees it: replica 0 writes it and every replica
  // reads it, from processes that may run in another folder (a node daemon's).
  return opts_.checkpoint_dir.empty() ? std::string()
                                      : fs::absolute(fs::path(opts_.checkpoint_dir) / "latest.troupeck").string();
}

namespace {

// Data parallelism as the run loop drives it.
class DpJob final : public train::Job {
 public:
  DpJob(Runtime& rt, const ReplicaConfig& cfg, const TrainerOptions& opts, Mesh<Replica> mesh, coll::GroupOptions g)
      : rt_(rt), cfg_(cfg), opts_(opts), mesh_(std::move(mesh)), g_(std::move(g)) {}
  // The replicas end with the run (their worker processes too).
  ~DpJob() { train::detail::stop_mesh(mesh_); }

  void form() override {
    coll::create_group(rt_, mesh_, g_);
    train::detail::call_all<std::int64_t>(mesh_, [](auto& m) { return m.call(&Replica::setup); }, kLimit);
  }
  std::int64_t steps_per_epoch() override {
    const std::int64_t per_epoch = mesh_[0].call(&Replica::steps_per_epoch).get(kLimit);
    if (per_epoch == 0)
      throw UsageError(fmt::format("data parallel: the training set does not fill one step of {} replicas x batch {} x "
                                   "accumulation {}: no step would run",
                                   mesh_.size(), cfg_.batch, cfg_.accumulation));
    return per_epoch;
  }
  std::vector<StepStats> train(std::int64_t n) override {
    auto chunks = train::detail::call_all<std::vector<StepStats>>(mesh_, [&](auto& m) { return m.call(&Replica::train, n); }, kLimit,
                                                                  std::chrono::seconds(30), /*tied=*/true);
    last_ = chunks;
    std::vector<StepStats> out = chunks.at(0);
    for (std::size_t k = 0; k < out.size(); ++k) {
      double loss = 0;
      std::int64_t samples = 0;
      for (auto& c : chunks) {
        loss += c.at(k).loss;
        samples += c[k].samples;
      }
      out[k].loss = static_cast<float>(loss / static_cast<double>(chunks.size()));
      out[k].samples = samples;
    }
    return out;
  }
  void timings(std::vector<telemetry::RankTiming>& ranks, telemetry::PhaseSplit& split) override {
    const double R = static_cast<double>(last_.size());
    for (std::size_t r = 0; r < last_.size(); ++r) {
      telemetry::PhaseSplit mine;
      for (const auto& s : last_[r]) {
        mine.data += s.data_s;
        mine.forward += s.forward_s;
        mine.backward += s.backward_s;
        mine.collective += s.wait_s;
        mine.optimizer += s.optimizer_s;
      }
      const double n = std::max<double>(1, static_cast<double>(last_[r].size()));
      split.data += mine.data / n / R;
      split.forward += mine.forward / n / R;
      split.backward += mine.backward / n / R;
      split.collective += mine.collective / n / R;
      split.optimizer += mine.optimizer / n / R;
      auto who = rank(r);
      who.compute_s = (mine.data + mine.forward + mine.backward + mine.optimizer) / n;
      who.wait_s = mine.collective / n;
      ranks.push_back(std::move(who));
    }
  }
  std::vector<train::LiveRank> live_ranks() override {
    return train::detail::live_ranks(mesh_, [this](std::size_t a) { return rank(a); });
  }
  // Every replica does the same work: each is compared with the others.
  telemetry::RankTiming rank(std::size_t r) const {
    return {static_cast<std::uint32_t>(r), fmt::format("replica {}", r), "replica",
            r < mesh_.size() ? mesh_[r].id() : 0, 0, 0};
  }
  EvalStats evaluate(std::int64_t limit) override {
    // The test set, split over the replicas, evaluated in parallel.
    auto parts = mesh_.call(&Replica::evaluate_share, limit).get(kLimit);
    return train::merge(parts);
  }
  std::uint64_t check_params(std::int64_t step) override {
    // Every replica applied the same averaged gradients: any difference is a bug, not noise.
    auto hashes = mesh_.call(&Replica::param_hash).get(kLimit);
    for (std::size_t i = 1; i < hashes.size(); ++i)
      if (hashes[i] != hashes[0])
        throw Error(fmt::format("data parallel: replica {} parameters differ from replica 0's after step {}", i, step));
    return hashes[0];
  }
  void save(const std::string& path, std::int64_t) override {
    mesh_[0].call(&Replica::save, path).get(kLimit);  // every replica holds the same state
  }
  std::int64_t load(const std::string& path) override {
    auto steps = train::detail::call_all<std::int64_t>(mesh_, [&](auto& m) { return m.call(&Replica::load, path); }, kLimit);
    return steps.at(0);
  }
  void wait_alive(std::chrono::seconds limit) override {
    train::detail::wait_all_alive(mesh_, &Replica::pid, "data parallel: replica", limit);
  }
  void after_chunk(std::int64_t step) override {
    if (opts_.after_chunk) opts_.after_chunk(step, mesh_);
  }

 private:
  static constexpr std::chrono::milliseconds kLimit{30 * 60 * 1000};
  std::vector<std::vector<StepStats>> last_;  // the last chunk, by replica
  Runtime& rt_;
  const ReplicaConfig& cfg_;
  const TrainerOptions& opts_;
  Mesh<Replica> mesh_;
  coll::GroupOptions g_;
};

}  // namespace

FitResult DataParallelTrainer::fit(const std::function<void(const Progress&)>& on_progress) {
  const auto replicas = static_cast<std::size_t>(opts_.replicas);
  Options o = opts_.actor_options;
  if (opts_.processes) o.process();
  if (!opts_.checkpoint_dir.empty()) o.max_restarts(opts_.max_failures);
  auto mesh = [&]() {
    try {
      return rt_.spawn_mesh<Replica>(replicas, cfg_, o);
    } catch (const Infeasible& e) {
      // Say what the whole run asks for, and what to change.
      auto [each, here] = train::detail::describe_request(o);
      throw Infeasible(fmt::format(
          "data parallel: {} replicas, each asking for {}, do not fit on this cluster: fewer replicas ([train] "
          "replicas, TrainerOptions::replicas) or less per replica ([resources], TrainerOptions::actor_options) "
          "would. {}{}",
          replicas, each, e.what(), here));
    }
  }();
  coll::GroupOptions g;
  g.name = cfg_.group;
  if (device_.is_cuda()) {
    // Gradients in device buffers: NCCL when each replica has its own GPU,
    // cuda_local when they share one.
    g.memory = coll::Memory::cuda;
    if (!opts_.processes) g.devices.assign(replicas, device_.index);
  }
  DpJob job(rt_, cfg_, opts_, std::move(mesh), std::move(g));
  auto lo = train::loop_options("data parallel", cfg_, opts_, checkpoint_path());
  lo.runtime = &rt_;
  return train::run(job, lo, on_progress);
}

}  // namespace troupe::dp
