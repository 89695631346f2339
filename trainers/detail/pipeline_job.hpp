#pragma once
// Internal to trainers/pipeline.cpp: the pipeline's stage actors as the
// shared run loop drives them (form the groups, train chunks, evaluate,
// checkpoints and their resharding, the trace).
#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actors/ckpt/checkpoint.hpp"
#include "runtime/coll/create.hpp"
#include "trainers/detail/mesh_calls.hpp"
#include "trainers/detail/pipeline_detail.hpp"
#include "trainers/detail/schedule_layout.hpp"
#include "trainers/pipeline.hpp"

namespace troupe::pipeline::detail {

// The pipeline as the run loop drives it.
class PipelineJob final : public train::Job {
  using EvalStats = train::EvalStats;
  using StepStats = train::StepStats;
 public:
  PipelineJob(Runtime& rt, const StageConfig& cfg, const PipelineOptions& opts, Mesh<Stage> mesh)
      : rt_(rt), cfg_(cfg), opts_(opts), mesh_(std::move(mesh)) {}
  // The stage actors end with the run (their worker processes too).
  ~PipelineJob() { train::detail::stop_mesh(mesh_); }

  void form() override {
    // The mesh is dp x pp x tp: a "pp" group per pipeline line (a replica's
    // stages at one tp rank), a "pp_dp" group per (stage, tp rank) across the
    // replicas, a "tp" group per stage of a replica.
    auto group = [&](const char* name) {
      coll::GroupOptions g;
      g.name = name;
      g.timeout_ms = opts_.transfer_timeout_ms;
      if (cfg_.train.device.is_cuda()) g.memory = coll::Memory::cuda;
      return g;
    };
    auto pp = group("pp");
    pp.heap_bytes = 1 << 20;
    coll::create_groups(rt_, mesh_, "pp", pp);
    if (cfg_.replicas > 1) coll::create_groups(rt_, mesh_, "dp", group("pp_dp"));
    if (cfg_.tensor_parallel > 1) coll::create_groups(rt_, mesh_, "tp", group("tp"));
    held_ = train::detail::call_all<std::string>(mesh_, [](auto& m) { return m.call(&Stage::setup); }, kLimit, grace());
  }
  std::int64_t steps_per_epoch() override {
    const std::int64_t n = mesh_[0].call(&Stage::steps_per_epoch).get(kLimit);
    if (n == 0)
      throw UsageError(fmt::format("pipeline: the training set does not fill one step of {} replicas x {} micro-batches "
                                   "x batch {}: no step would run",
                                   cfg_.replicas, cfg_.train.accumulation, cfg_.train.batch));
    return n;
  }
  std::vector<StepStats> train(std::int64_t n) override {
    auto per = train::detail::call_all<std::vector<StepStats>>(
        mesh_, [&](auto& m) { return m.call(&Stage::train, n); }, kLimit, grace(), /*tied=*/true);
    last_ = per;
    const auto D = static_cast<std::size_t>(cfg_.replicas);
    const Layout lay{cfg_.stages, cfg_.virtual_stages};
    const auto last_actor = static_cast<std::size_t>(lay.place(lay.S() - 1).actor);
    const auto& shape = mesh_.shape();
    std::vector<StepStats> out(static_cast<std::size_t>(n));
    peak_.resize(per.size(), 0);  // the most over the run
    for (std::size_t k = 0; k < out.size(); ++k) {
      double loss = 0, wall = 0;
      for (std::size_t a = 0; a < per.size(); ++a) {
        const auto& s = per[a].at(k);
        out[k].samples += s.samples;
        out[k].busy_s += s.busy_s;
        wall = std::max(wall, s.wall_s);
        peak_[a] = std::max(peak_[a], s.peak_live);
        if (shape.coord(a, "pp") == last_actor && shape.coord(a, "tp") == 0) {
          loss += s.loss;
          out[k].epoch = s.epoch;
          out[k].lr = s.lr;
          out[k].step = s.step;
        }
      }
      out[k].loss = static_cast<float>(loss / static_cast<double>(D));
      out[k].wall_s = wall * static_cast<double>(per.size());
    }
    return out;
  }
  void timings(std::vector<telemetry::RankTiming>& ranks, telemetry::PhaseSplit& split) override {
    // A stage actor computes (busy) or waits for its neighbours and peers.
    const double A = static_cast<double>(last_.size());
    for (std::size_t a = 0; a < last_.size(); ++a) {
      double busy = 0, wall = 0;
      for (const auto& s : last_[a]) busy += s.busy_s, wall += s.wall_s;
      const double n = std::max<double>(1, static_cast<double>(last_[a].size()));
      auto who = rank(a);
      who.compute_s = busy / n;
      who.wait_s = std::max(0.0, wall - busy) / n;
      ranks.push_back(std::move(who));
      split.forward += busy / n / A;  // forward and backward are not told apart here
      split.collective += std::max(0.0, wall - busy) / n / A;
    }
  }
  std::vector<train::LiveRank> live_ranks() override {
    return train::detail::live_ranks(mesh_, [this](std::size_t a) { return rank(a); });
  }
  // Stage actor a: stages differ by design, so each is compared with the
  // same stage (and tp rank) of the other replicas only.
  telemetry::RankTiming rank(std::size_t a) const {
    const auto& shape = mesh_.shape();
    const auto dp = shape.coord(a, "dp"), pp = shape.coord(a, "pp"), tp = shape.coord(a, "tp");
    const std::string stage = shape.size("tp") > 1 ? fmt::format("stage {} tp {}", pp, tp) : fmt::format("stage {}", pp);
    return {static_cast<std::uint32_t>(a), fmt::format("{} dp {}", stage, dp), stage,
            a < mesh_.size() ? mesh_[a].id() : 0, 0, 0};
  }
  EvalStats evaluate(std::int64_t limit) override {
    auto parts = train::detail::call_all<EvalStats>(mesh_, [&](auto& m) { return m.call(&Stage::evaluate, limit); }, kLimit, grace(),
                                                   /*tied=*/true);
    return train::merge(parts);
  }
  std::uint64_t check_params(std::int64_t step) override {
    auto hashes = mesh_.call(&Stage::param_hash).get(kLimit);
    const auto& shape = mesh_.shape();
    const std::size_t per_replica = shape.stride("dp");  // K x T actors
    // The copies of a stage applied the same averaged gradients: any difference is a bug.
    for (std::size_t a = per_replica; a < hashes.size(); ++a)
      if (hashes[a] != hashes[a % per_replica])
        throw Error(fmt::format("pipeline: stage {}{} of replica {} differs from replica 0's after step {}",
                                shape.coord(a, "pp"),
                                cfg_.tensor_parallel > 1 ? fmt::format(" (tp rank {})", shape.coord(a, "tp")) : "",
                                a / per_replica, step));
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t r = 0; r < per_replica; ++r) h = (h ^ hashes[r]) * 1099511628211ull;
    return h;
  }
  // A checkpoint is a file per stage (replica 0's: the copies are equal)
  // and, written last and atomically, the file naming them: a crash while
  // saving leaves the previous checkpoint whole.
  void save(const std::string& path, std::int64_t step) override {
    const auto K = static_cast<std::size_t>(cfg_.stages), T = static_cast<std::size_t>(cfg_.tensor_parallel);
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    std::vector<std::string> files;
    std::vector<Ref<std::int64_t>> refs;
    for (std::size_t a = 0; a < K * T; ++a) {  // replica 0's actors, stage by stage, tp fastest
      files.push_back(T > 1 ? fmt::format("pipeline-step{}-stage{}-tp{}.troupeck", step, a / T, a % T)
                            : fmt::format("pipeline-step{}-stage{}.troupeck", step, a));
      refs.push_back(mesh_[a].call(&Stage::save, (dir / files.back()).string()));
    }
    for (auto& r : refs) r.get(kLimit);
    ckpt::Checkpoint manifest;
    manifest.meta = {{"kind", "troupe.pipeline"},
                     {"step", std::to_string(step)},
                     {"stages", std::to_string(K)},
                     {"tensor_parallel", std::to_string(T)},
                     {"replicas", std::to_string(cfg_.replicas)},
                     {"batch", std::to_string(cfg_.train.batch)},
                     {"microbatches", std::to_string(cfg_.train.accumulation)},
                     {"virtual_stages", std::to_string(cfg_.virtual_stages)},
                     {"tp_blocks", fmt::format("{}", fmt::join(cfg_.train.tp_blocks, ","))},
                     {"blocks", fmt::format("{}", fmt::join(cfg_.block_bounds, ","))},
                     {"files", fmt::format("{}", fmt::join(files, ","))}};
    ckpt::save(path, manifest);
    // The files of older checkpoints go.
    for (auto& e : std::filesystem::directory_iterator(dir)) {
      const auto name = e.path().filename().string();
      if (name.rfind("pipeline-step", 0) == 0 && std::find(files.begin(), files.end(), name) == files.end()) {
        std::error_code ec;
        std::filesystem::remove(e.path(), ec);
      }
    }
  }
  std::int64_t load(const std::string& path) override {
    const ckpt::Checkpoint manifest = ckpt::load(path);
    const auto K = static_cast<std::size_t>(cfg_.stages), T = static_cast<std::size_t>(cfg_.tensor_parallel);
    manifest.check("troupe.pipeline", {}, path, "a pipeline");
    auto meta_or = [&](const char* key, const std::string& otherwise) {
      auto it = manifest.meta.find(key);
      return it == manifest.meta.end() ? otherwise : it->second;
    };
    const std::string saved_tp = meta_or("tensor_parallel", "1");
    const bool same_layout = manifest.require("stages", path, "a pipeline") == std::to_string(K) &&
                             meta_or("batch", std::to_string(cfg_.train.batch)) == std::to_string(cfg_.train.batch) &&
                             meta_or("microbatches", std::to_string(cfg_.train.accumulation)) ==
                                 std::to_string(cfg_.train.accumulation) &&
                             saved_tp == std::to_string(T) &&
                             meta_or("replicas", std::to_string(cfg_.replicas)) == std::to_string(cfg_.replicas) &&
                             meta_or("virtual_stages", "1") == std::to_string(cfg_.virtual_stages) &&
                             meta_or("blocks", "") == fmt::format("{}", fmt::join(cfg_.block_bounds, ",")) &&
                             (T == 1 || meta_or("tp_blocks", "") == fmt::format("{}", fmt::join(cfg_.train.tp_blocks, ",")));
    std::vector<std::int64_t> steps;
    if (same_layout) {
      const auto files = split_list(manifest.require("files", path, "a pipeline"));
      if (files.size() != K * T)
        throw ckpt::CheckpointError(fmt::format("{}: names {} stage files for {} stages x {} tp ranks", path, files.size(), K, T));
      const std::filesystem::path dir = std::filesystem::path(path).parent_path();
      // call_all calls the members in mesh order (dp x pp x tp): member a loads
      // replica 0's file of its (stage, tp rank).
      std::size_t a = 0;
      steps = train::detail::call_all<std::int64_t>(
          mesh_, [&](auto& m) { return m.call(&Stage::load, (dir / files[a++ % (K * T)]).string()); }, kLimit);
    } else {
      // Saved in another layout (stages, tp ranks, cut): every stage takes
      // its part from the whole tensors the saved parts make.
      steps = train::detail::call_all<std::int64_t>(mesh_, [&](auto& m) { return m.call(&Stage::reshard, path); }, kLimit);
      const std::int64_t there = std::stoll(meta_or("batch", std::to_string(cfg_.train.batch))) *
                                 std::stoll(meta_or("microbatches", std::to_string(cfg_.train.accumulation))) *
                                 std::stoll(meta_or("replicas", std::to_string(cfg_.replicas)));
      const std::int64_t here = cfg_.train.batch * cfg_.train.accumulation * cfg_.replicas;
      const std::string saved_step = meta_or("step", "?");
      notes_.push_back(fmt::format(
          "pipeline: resharding a checkpoint saved as dp {} x pp {} x tp {} (blocks {}) for dp {} x pp {} x tp {} (blocks "
          "{}){}",
          meta_or("replicas", "?"), manifest.meta.at("stages"), saved_tp, meta_or("blocks", "?"), cfg_.replicas, K, T,
          fmt::format("{}", fmt::join(cfg_.block_bounds, ",")),
          there == here ? fmt::format(": step {}", saved_step)
                        : fmt::format(": its step {} of {} examples is step {} here ({} examples per step)", saved_step,
                                      there, steps.at(0), here)));
      fmt::print(stderr, "{}\n", notes_.back());
    }
    if (opts_.on_resume) opts_.on_resume(steps.at(0), mesh_);
    return steps.at(0);
  }
  void wait_alive(std::chrono::seconds limit) override {
    train::detail::wait_all_alive(mesh_, &Stage::pid, "pipeline: stage actor", limit);
  }
  void after_chunk(std::int64_t step) override {
    if (opts_.after_chunk) opts_.after_chunk(step, mesh_);
  }
  double bubble(const std::vector<StepStats>& chunk) override {
    double busy = 0, cap = 0;
    for (auto& s : chunk) {
      busy += s.busy_s;
      cap += s.wall_s;
    }
    return cap > 0 ? std::max(0.0, 1.0 - busy / cap) : -1;
  }
  void trace(const std::string& path) {
    auto spans = train::detail::call_all<std::vector<StageSpan>>(mesh_, [](auto& m) { return m.call(&Stage::timeline); }, kLimit);
    write_trace(path, spans, cfg_.stages, cfg_.virtual_stages, cfg_.tensor_parallel);
  }
  const std::vector<std::string>& held() const { return held_; }
  const std::vector<std::string>& notes() const { return notes_; }
  const std::vector<std::int64_t>& peak() const { return peak_; }

 private:
  static constexpr std::chrono::milliseconds kLimit{30 * 60 * 1000};
  std::chrono::milliseconds grace() const { return std::chrono::milliseconds(opts_.transfer_timeout_ms) + std::chrono::seconds(5); }
  Runtime& rt_;
  const StageConfig& cfg_;
  const PipelineOptions& opts_;
  Mesh<Stage> mesh_;
  std::vector<std::string> held_;
  std::vector<std::int64_t> peak_;
  std::vector<std::vector<StepStats>> last_;  // the last chunk, by stage actor
  std::vector<std::string> notes_;  // what loading said (a reshard)
};

}  // namespace troupe::pipeline::detail
