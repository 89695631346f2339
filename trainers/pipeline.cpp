// The pipeline trainer: checks the split and the schedule, spawns the stage
// actors, forms their groups and drives them with the shared run loop.
#include "trainers/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actors/ckpt/checkpoint.hpp"
#include "runtime/coll/create.hpp"
#include "runtime/device.hpp"
#include "trainers/detail/mesh_calls.hpp"
#include "trainers/detail/pipeline_job.hpp"
#include "trainers/detail/pipeline_detail.hpp"
#include "trainers/detail/schedule_layout.hpp"

namespace troupe::pipeline {

namespace fs = std::filesystem;
using compute::Tensor;
using train::EvalStats;
using train::StepStats;

using detail::PipelineJob;
using detail::split_list;

PipelineTrainer::PipelineTrainer(Runtime& rt, train::TrainConfig cfg, PipelineOptions opts)
    : rt_(rt), opts_(std::move(opts)) {
  const auto& o = opts_;
  if (o.stages < 1 || o.microbatches < 1 || o.virtual_stages < 1 || o.replicas < 1)
    throw UsageError(fmt::format("pipeline: stages ({}), microbatches ({}), virtual_stages ({}) and replicas ({}) must "
                                 "each be at least 1",
                                 o.stages, o.microbatches, o.virtual_stages, o.replicas));
  if (o.tensor_parallel < 1)
    throw OptionError("parallel.tp", fmt::format("pipeline: tensor_parallel {} must be at least 1", o.tensor_parallel));
  if (o.stages * o.replicas * o.tensor_parallel > static_cast<int>(coll::kMaxRanks))
    throw UsageError(fmt::format("pipeline: {} stages x {} replicas x {} tp ranks = {} stage actors (at most {})",
                                 o.stages, o.replicas, o.tensor_parallel, o.stages * o.replicas * o.tensor_parallel,
                                 coll::kMaxRanks));
  if (o.tensor_parallel > 1) {
    if (cfg.tp_blocks.empty())
      throw OptionError("model.tp_blocks",
                        fmt::format("pipeline: tensor_parallel = {} but no hidden layer is split (model.tp_blocks / "
                                    "TrainConfig::tp_blocks is empty): every tp rank would hold the whole model",
                                    o.tensor_parallel));
    try {
      nn::tp_split_layers(train::mlp_spec(cfg), o.tensor_parallel);
    } catch (const UsageError& e) {
      throw OptionError("model.tp_blocks", fmt::format("pipeline: {}", e.what()));
    }
  }
  if (o.chunk_steps < 1) throw UsageError("pipeline: chunk_steps must be at least 1");
  if (o.max_failures < -1)
    throw UsageError(fmt::format("pipeline: max_failures {}: at least 0, or -1 for no limit", o.max_failures));
  if (cfg.accumulation != 1 && cfg.accumulation != o.microbatches)
    throw UsageError(fmt::format("pipeline: accumulation {} with {} micro-batches: a pipeline accumulates over its "
                                 "micro-batches ([pipeline] microbatches); leave accumulation at 1",
                                 cfg.accumulation, o.microbatches));
  cfg.accumulation = o.microbatches;
  const compute::Device dev = train::device_of(cfg.device);
  if (dev.is_cuda() && o.processes && cfg.device != train::DeviceChoice::cuda())
    throw UsageError(fmt::format("pipeline: device '{}' with stages in worker processes: each worker trains on the GPU "
                                 "it was given; say \"cuda\" (DeviceChoice::cuda()), with no index",
                                 cfg.device));
  if (cfg.precision != compute::DType::f32)
    throw UsageError(fmt::format("pipeline: precision '{}': pipelines pass float32 activations (f32 only for now)",
                                 cfg.precision));
  train::check_config(cfg, {.devices_here = !o.processes, .data_here = !o.processes || rt_.cluster_address().empty()});
  if (cfg.train_limit > 0 && (cfg.train_limit + o.replicas - 1) / o.replicas < cfg.batch * o.microbatches)
    throw OptionError("pipeline.microbatches",
                      fmt::format("pipeline: train_limit {} ([data] train_limit) is less than one step: {} replicas x {} "
                                 "micro-batches x batch {} = {} examples; no step would run (fewer micro-batches, a smaller "
                                 "batch, or more examples would)",
                                 cfg.train_limit, o.replicas, o.microbatches, cfg.batch,
                                 static_cast<std::int64_t>(o.replicas) * o.microbatches * cfg.batch));
  // The schedule: a kind, or written text. Either way it is simulated now
  // (ScheduleError: `troupe run` points at pipeline.schedule).
  {
    if (is_written(o.schedule)) {
      schedule_ = parse(o.schedule);
      // Sizes first: a stray action (F7 of 4 micro-batches, a chunk that does
      // not exist) shows as a size that differs from the run's.
      if (schedule_.stages != o.stages || schedule_.virtual_stages != o.virtual_stages ||
          schedule_.microbatches != o.microbatches)
        throw ScheduleError(fmt::format("pipeline: the written schedule has {} stages, {} micro-batches and {} virtual "
                                        "stages (from the actions it names), but the run asks for {}, {} and {}",
                                        schedule_.stages, schedule_.microbatches, schedule_.virtual_stages, o.stages,
                                        o.microbatches, o.virtual_stages));
      for (std::size_t r = 0; r < schedule_.actions.size(); ++r)
        for (int c = 0; c < o.virtual_stages; ++c) {
          const bool has = std::find(schedule_.actions[r].begin(), schedule_.actions[r].end(),
                                     Action{Op::REDUCE_GRAD, -1, c}) != schedule_.actions[r].end();
          if (o.replicas > 1 && !has)
            throw ScheduleError(fmt::format("pipeline: stage {} of the written schedule has no REDUCE_GRAD@{}: with {} "
                                            "replicas every chunk's gradients must be all-reduced before STEP",
                                            r, c, o.replicas));
        }
    } else {
      const Kind kind = parse_kind(o.schedule);
      if (kind != Kind::interleaved && o.virtual_stages != 1)
        throw ScheduleError(fmt::format("pipeline: schedule '{}' runs one chunk per stage; virtual_stages = {} needs "
                                        "schedule = \"interleaved\"",
                                        o.schedule, o.virtual_stages));
      if (kind == Kind::interleaved && o.virtual_stages < 2)
        throw ScheduleError("pipeline: schedule 'interleaved' needs virtual_stages = 2 or more (chunks per stage; "
                            "with 1 it is 1f1b)");
      schedule_ = generate(kind, o.stages, o.microbatches, o.virtual_stages, o.replicas > 1);
    }
    report_ = check(schedule_);
    // On a GPU the stages pass activations over a device group, which takes a
    // pair's transfers in the order they are posted (check_ordered).
    if (cfg.device.is_cuda()) {
      try {
        check_ordered(schedule_);
      } catch (const ScheduleError& e) {
        throw ScheduleError(fmt::format("{} (device = \"{}\"; on a GPU use gpipe, 1f1b or zb-h1, or write a schedule "
                                        "whose transfers both sides post in the same order)",
                                        e.what(), cfg.device));
      }
    }
  }
  // The split: blocks per model stage.
  const auto blocks = model_blocks(cfg);
  // Whether a stage may start at block b: not right after a hidden layer
  // split by tp (its row-parallel half is in block b).
  auto cuttable = [&](std::int64_t b) {
    if (o.tensor_parallel <= 1) return true;
    return std::find(cfg.tp_blocks.begin(), cfg.tp_blocks.end(), b - 1) == cfg.tp_blocks.end();
  };
  const int S = o.stages * o.virtual_stages;
  std::vector<std::int64_t> cut;  // in blocks
  if (!o.layers.empty()) {
    if (static_cast<int>(o.layers.size()) != S)
      throw OptionError("pipeline.layers", fmt::format("pipeline: {} layer ranges for {} model stages ({} stages x {} virtual stages)",
                                   o.layers.size(), S, o.stages, o.virtual_stages));
    std::int64_t at = 0;
    for (std::size_t s = 0; s < o.layers.size(); ++s) {
      auto [b, e] = o.layers[s];
      if (b == at && e > static_cast<std::int64_t>(blocks.size()))
        throw OptionError("pipeline.layers",
                          fmt::format("pipeline: layer range {} is [{}, {}): it ends past the model's {} blocks (the "
                                      "last range ends at {})",
                                      s, b, e, blocks.size(), blocks.size()));
      if (b != at || e <= b)
        throw OptionError("pipeline.layers", fmt::format("pipeline: layer range {} is [{}, {}): ranges must cover the model's {} blocks (0 "
                                     "to {}) in order, each non-empty, starting where the last ended ({})",
                                     s, b, e, blocks.size(), blocks.size(), at));
      cut.push_back(b);
      at = e;
    }
    if (at != static_cast<std::int64_t>(blocks.size()))
      throw OptionError("pipeline.layers", fmt::format("pipeline: the layer ranges end at block {}, but the model has {} "
                                                       "blocks",
                                                       at, blocks.size()));
    cut.push_back(at);
    opts_.split = Split::explicit_ranges;
    for (auto b : cut)
      if (!cuttable(b))
        throw OptionError("pipeline.layers",
                          fmt::format("pipeline: a stage starts at block {}, between the column-parallel Linear of hidden "
                                      "layer {} (model.tp_blocks) and the row-parallel one after it: a split block stays "
                                      "in one stage",
                                      b, b - 1));
  } else {
    std::vector<double> costs;
    if (o.split == Split::time) {
      costs = detail::measure_blocks(cfg, blocks);
    } else {
      nn::Model m = train::make_model(cfg);
      for (auto [b, e] : blocks) {
        double n = 0;
        for (auto i = b; i < e; ++i)
          for (auto* p : m.layer_params(static_cast<std::size_t>(i))) n += static_cast<double>(p->value.numel());
        costs.push_back(n);
      }
    }
    block_costs_ = costs;
    // With tensor parallelism a split block (hidden layer i's column- and the
    // next block's row-parallel Linear) stays in one stage: the balance is
    // over units that join them.
    std::vector<double> unit_costs;
    std::vector<std::int64_t> unit_start;  // the block each unit starts at
    for (std::size_t b = 0; b < costs.size(); ++b) {
      if (b == 0 || cuttable(static_cast<std::int64_t>(b))) {
        unit_costs.push_back(0);
        unit_start.push_back(static_cast<std::int64_t>(b));
      }
      unit_costs.back() += costs[b];
    }
    unit_start.push_back(static_cast<std::int64_t>(costs.size()));
    if (unit_costs.size() < costs.size() && static_cast<int>(unit_costs.size()) < S)
      throw OptionError("pipeline.stages",
                        fmt::format("pipeline: {} model stages, but the model cuts into only {}: it has {} blocks "
                                    "({} hidden layers and the output layer), and each split hidden layer "
                                    "(model.tp_blocks) stays in one stage with the block after it",
                                    S, unit_costs.size(), costs.size(), costs.size() - 1));
    try {
      cut.clear();
      for (auto u : balance(unit_costs, S)) cut.push_back(unit_start[static_cast<std::size_t>(u)]);
    } catch (const UsageError& e) {
      throw OptionError("pipeline.stages", fmt::format("pipeline: {}", e.what()));
    }
    // A measured split differs a little from run to run: a run that resumes
    // keeps the split its checkpoint was trained with.
    const auto ckpt = checkpoint_path();
    if (o.split == Split::time && o.resume && !ckpt.empty() && fs::exists(ckpt)) {
      try {
        const auto manifest = ckpt::load(ckpt);
        if (auto it = manifest.meta.find("blocks"); it != manifest.meta.end()) {
          std::vector<std::int64_t> saved;
          for (const auto& b : split_list(it->second)) saved.push_back(std::stoll(b));
          if (saved.size() == cut.size() && saved.front() == 0 && saved.back() == cut.back()) cut = saved;
        }
      } catch (const std::exception&) {
        // Not readable here: the stages' load says what is wrong with it.
      }
    }
  }
  for (std::size_t s = 0; s + 1 < cut.size(); ++s) blocks_.emplace_back(cut[s], cut[s + 1]);
  cfg_.train = std::move(cfg);
  cfg_.stages = o.stages;
  cfg_.virtual_stages = o.virtual_stages;
  cfg_.replicas = o.replicas;
  cfg_.tensor_parallel = o.tensor_parallel;
  cfg_.batch_transfers = o.batch_transfers;
  cfg_.schedule = to_text(schedule_);
  cfg_.block_bounds = cut;
  for (auto b : cut)
    cfg_.bounds.push_back(b == static_cast<std::int64_t>(blocks.size()) ? blocks.back().second
                                                                          : blocks[static_cast<std::size_t>(b)].first);
  // A GPU stage in a worker trains on the GPU placement gives it.
  if (dev.is_cuda() && o.processes && opts_.actor_options.gpus_ <= 0) opts_.actor_options.gpus(1);
}

std::string PipelineTrainer::checkpoint_path() const {
  return opts_.checkpoint_dir.empty() ? std::string()
                                      : fs::absolute(fs::path(opts_.checkpoint_dir) / "latest.troupeck").string();
}

std::string PipelineTrainer::describe() const {
  std::string s = fmt::format("pipeline: {} stage{} x {} virtual x {} replica{}{}, {} micro-batches of {}, schedule {}, split "
                              "by {}\n",
                              opts_.stages, opts_.stages == 1 ? "" : "s", opts_.virtual_stages, opts_.replicas,
                              opts_.replicas == 1 ? "" : "s",
                              opts_.tensor_parallel > 1
                                  ? fmt::format(" x {} tp ranks (hidden layers {} split)", opts_.tensor_parallel,
                                                fmt::join(cfg_.train.tp_blocks, ", "))
                                  : "",
                              opts_.microbatches, cfg_.train.batch,
                              is_written(opts_.schedule) ? std::string("(written)") : opts_.schedule,
                              opts_.split);
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    s += fmt::format("  model stage {} (stage {}): blocks [{}, {})", i, i % static_cast<std::size_t>(opts_.stages),
                     blocks_[i].first, blocks_[i].second);
    // What the split weighed: a lopsided cut shows why.
    double cost = 0;
    for (auto b = blocks_[i].first; b < blocks_[i].second && static_cast<std::size_t>(b) < block_costs_.size(); ++b)
      cost += block_costs_[static_cast<std::size_t>(b)];
    if (!block_costs_.empty() && opts_.split == Split::time)
      s += fmt::format(", forward + backward {:.2f} ms measured", cost * 1e3);
    else if (!block_costs_.empty())
      s += fmt::format(", {:.0f} parameters{}", cost, opts_.tensor_parallel > 1 ? " (the whole stage's: its tp ranks share its split layers)" : "");
    s += "\n";
  }
  s += fmt::format("  schedule bubble {:.1f}% (simulated, F = 1, B = 2), peak activations per stage {}",
                   100 * report_.bubble, fmt::join(report_.peak_activations, " "));
  return s;
}

train::FitResult PipelineTrainer::fit(const std::function<void(const train::Progress&)>& on_progress) {
  const auto n = static_cast<std::size_t>(opts_.stages * opts_.replicas * opts_.tensor_parallel);
  Options o = opts_.actor_options;
  if (opts_.processes) o.process();
  if (!opts_.checkpoint_dir.empty()) o.max_restarts(opts_.max_failures);
  const MeshShape shape{{"dp", static_cast<std::size_t>(opts_.replicas)},
                        {"pp", static_cast<std::size_t>(opts_.stages)},
                        {"tp", static_cast<std::size_t>(opts_.tensor_parallel)}};
  std::vector<std::string> warnings;
  std::vector<PlacementGroup> groups;  // 3-D in worker processes: one per tp group
  auto mesh = [&]() {
    try {
      if (opts_.tensor_parallel <= 1 || !opts_.processes) return rt_.spawn_mesh<Stage>(n, cfg_, o).reshape(shape);
      return spawn_tp_groups(shape, o, groups, warnings);
    } catch (const Infeasible& e) {
      for (auto& g : groups) rt_.remove_placement_group(g);
      auto [each, here] = train::detail::describe_request(o);
      std::string total;
      if (auto it = o.resources_.find("CPU"); it != o.resources_.end())
        total = fmt::format(", {} CPUs in all", it->second * static_cast<double>(n));
      const bool tp = opts_.tensor_parallel > 1;
      throw Infeasible(fmt::format("pipeline: {} stage actors ({} stages x {} replicas{}), each asking for {}{}, do not "
                                   "fit on this cluster; ask for fewer stages{} or replicas, or less per stage "
                                   "([resources] cpus / gpus). {}{}",
                                   n, opts_.stages, opts_.replicas,
                                   tp ? fmt::format(" x {} tp ranks", opts_.tensor_parallel) : "", each, total,
                                   tp ? ", tp ranks" : "", e.what(), here));
    }
  }();
  train::FitResult r;
  {
    PipelineJob job(rt_, cfg_, opts_, std::move(mesh));
    auto lo = train::loop_options("pipeline", cfg_.train, opts_, checkpoint_path());
    lo.runtime = &rt_;
    r = train::run(job, lo, on_progress);
    r.peak_activations = job.peak();
    if (!opts_.trace.empty()) job.trace(opts_.trace);
    warnings.insert(warnings.end(), job.notes().begin(), job.notes().end());
  }
  for (auto& g : groups) rt_.remove_placement_group(g);
  r.warnings = std::move(warnings);
  return r;
}

Mesh<Stage> PipelineTrainer::spawn_tp_groups(const MeshShape& shape, const Options& o, std::vector<PlacementGroup>& groups,
                                             std::vector<std::string>& warnings) {
  // A stage's tp ranks all-reduce twice per split block per micro-batch: the
  // heaviest traffic of a 3-D run. Each tp group gets a placement group that
  // keeps it on one node (STRICT_PACK); where no node can hold one, it goes
  // where it fits (PACK) and the run says so.
  const std::size_t T = shape.size("tp");
  Resources each = o.resources_;
  if (each.empty()) each = {{"CPU", 0.0}};
  std::vector<ActorRef<Stage>> members(shape.size());
  try {
    for (std::size_t g = 0; g < shape.size() / T; ++g) {
      const std::size_t first = g * T;
      const auto c = shape.coords(first);
      PlacementGroup pg;
      try {
        pg = rt_.placement_group(std::vector<Resources>(T, each), troupe::Strategy::strict_pack);
      } catch (const Infeasible& e) {
        pg = rt_.placement_group(std::vector<Resources>(T, each), troupe::Strategy::pack);
        std::vector<std::uint64_t> nodes = pg.nodes;
        std::sort(nodes.begin(), nodes.end());
        nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
        (void)e;  // its per-node detail is long: what matters is where the group went
        warnings.push_back(fmt::format("pipeline: the {} tp ranks of replica {} stage {} do not fit on one node, so they "
                                       "span {} nodes ({}); their all-reduces cross the network",
                                       T, c[0], c[1], nodes.size(), fmt::join(nodes, ", ")));
        fmt::print(stderr, "{}\n", warnings.back());
      }
      groups.push_back(pg);
      for (std::size_t t = 0; t < T; ++t) {
        Options m = o;
        m.rank_ = first + t;
        m.mesh_size_ = shape.size();
        m.placement_group(pg, static_cast<int>(t));
        members[first + t] = rt_.spawn<Stage>(cfg_, m);
      }
    }
  } catch (...) {
    for (auto& m : members)
      if (m.valid()) m.kill();  // all or nothing, as spawn_mesh
    throw;
  }
  return Mesh<Stage>(std::move(members), shape);
}

}  // namespace troupe::pipeline
