// The pipeline trainer: checks the split and the schedule, spawns the stage
// actors, forms their groups and drives them with the shared run loop.
#include "trainers/pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actors/ckpt/checkpoint.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/stream.hpp"
#include "actors/nn/loss.hpp"
#include "runtime/coll/create.hpp"
#include "runtime/device.hpp"
#include "trainers/detail/mesh_calls.hpp"
#include "trainers/detail/schedule_layout.hpp"

namespace troupe::pipeline {

namespace fs = std::filesystem;
using compute::Tensor;
using train::EvalStats;
using train::StepStats;

const char* split_name(Split s) noexcept {
  switch (s) {
    case Split::explicit_ranges: return "layers";
    case Split::params: return "params";
    case Split::time: return "time";
  }
  return "?";
}

Split parse_split(std::string_view text) {
  if (text == "params") return Split::params;
  if (text == "time") return Split::time;
  throw UsageError(fmt::format("split '{}': expected \"params\" (balance parameter counts) or \"time\" (balance measured "
                               "forward + backward time)",
                               text));
}

std::vector<std::pair<std::int64_t, std::int64_t>> model_blocks(const train::TrainConfig& cfg) {
  const std::int64_t per_hidden = 2 + (cfg.layernorm ? 1 : 0) + (cfg.dropout > 0 ? 1 : 0);
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  std::int64_t at = 0;
  for (std::size_t i = 0; i < cfg.hidden.size(); ++i, at += per_hidden) out.emplace_back(at, at + per_hidden);
  out.emplace_back(at, at + 1);  // the output layer
  return out;
}

std::vector<std::int64_t> balance(const std::vector<double>& costs, int parts) {
  const auto n = static_cast<int>(costs.size());
  if (parts < 1) throw UsageError("balance: at least one part");
  if (n < parts)
    throw UsageError(fmt::format("the model has {} blocks (hidden layers and the output layer), fewer than the {} model "
                                 "stages asked for: use fewer stages (or virtual stages), or a deeper model",
                                 n, parts));
  // best[p][i]: the smallest largest part when the first i blocks make p parts.
  std::vector<double> prefix(static_cast<std::size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) prefix[static_cast<std::size_t>(i) + 1] = prefix[static_cast<std::size_t>(i)] + costs[static_cast<std::size_t>(i)];
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(static_cast<std::size_t>(parts) + 1, std::vector<double>(static_cast<std::size_t>(n) + 1, inf));
  std::vector<std::vector<int>> cut(static_cast<std::size_t>(parts) + 1, std::vector<int>(static_cast<std::size_t>(n) + 1, 0));
  best[0][0] = 0;
  for (int p = 1; p <= parts; ++p)
    for (int i = p; i <= n; ++i)
      for (int j = p - 1; j < i; ++j) {
        const double v = std::max(best[static_cast<std::size_t>(p) - 1][static_cast<std::size_t>(j)],
                                  prefix[static_cast<std::size_t>(i)] - prefix[static_cast<std::size_t>(j)]);
        if (v < best[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)]) {
          best[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)] = v;
          cut[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)] = j;
        }
      }
  std::vector<std::int64_t> bounds(static_cast<std::size_t>(parts) + 1);
  bounds[static_cast<std::size_t>(parts)] = n;
  for (int p = parts, i = n; p > 0; --p) {
    i = cut[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)];
    bounds[static_cast<std::size_t>(p) - 1] = i;
  }
  return bounds;
}

namespace {

// Forward + backward time of each block on one micro-batch, in this process
// (the median of a few runs after a warm-up).
std::vector<double> measure_blocks(const train::TrainConfig& cfg, const std::vector<std::pair<std::int64_t, std::int64_t>>& blocks) {
  compute::set_num_threads(cfg.threads);
  nn::Model whole = train::make_model(cfg);
  std::vector<double> out;
  Tensor x = Tensor::zeros({cfg.batch, cfg.inputs});
  {
    auto v = x.to_vector();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 2654435761u) % 1000) / 1000.0f;
    x = Tensor::from(v, {cfg.batch, cfg.inputs});
  }
  for (auto [b, e] : blocks) {
    const bool first = b == 0;  // the first stage computes no input gradient for it
    nn::Model part = whole.slice(static_cast<std::size_t>(b), static_cast<std::size_t>(e));
    nn::Tape tape;
    std::vector<double> runs;
    Tensor y;
    for (int k = 0; k < 5; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      y = part.forward(x, tape, {true, 1});
      Tensor dy = y.clone();
      part.backward(dy, tape, {}, !first);
      runs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(runs.begin(), runs.end());
    out.push_back(runs[runs.size() / 2]);
    x = y.clone();
  }
  return out;
}

std::string span_name(const StageSpan& s) {
  if (s.mb < 0) return s.what;
  return fmt::format("{}{}@{}", s.what, s.mb, s.chunk);
}

// A Chrome trace (Perfetto opens it): one process per pipeline replica, one
// track per stage, a flow arrow from each forward (backward) to the next
// (previous) model stage's pass of the same micro-batch.
void write_trace(const std::string& path, const std::vector<std::vector<StageSpan>>& by_actor, int K, int v) {
  fs::create_directories(fs::absolute(fs::path(path)).parent_path());
  std::ofstream out(path);
  if (!out) throw Error(fmt::format("pipeline: cannot write the trace to {}", path));
  const detail::Layout lay{K, v};
  out << "{\"displayTimeUnit\":\"us\",\"traceEvents\":[\n";
  bool first = true;
  auto emit = [&](const std::string& ev) {
    out << (first ? "" : ",\n") << ev;
    first = false;
  };
  double origin = std::numeric_limits<double>::infinity();
  for (auto& spans : by_actor)
    for (auto& s : spans) origin = std::min(origin, s.start_us);
  // (replica, step, mb, model stage, pass) -> span, for the flows.
  std::map<std::tuple<std::size_t, std::int64_t, int, int, char>, const StageSpan*> pass;
  for (std::size_t a = 0; a < by_actor.size(); ++a) {
    const std::size_t d = a / static_cast<std::size_t>(K), r = a % static_cast<std::size_t>(K);
    emit(fmt::format(R"({{"ph":"M","name":"thread_name","pid":{},"tid":{},"args":{{"name":"stage {}"}}}})", d, r, r));
    if (r == 0) emit(fmt::format(R"({{"ph":"M","name":"process_name","pid":{},"args":{{"name":"pipeline replica {}"}}}})", d, d));
    for (auto& s : by_actor[a]) {
      emit(fmt::format(R"({{"ph":"X","name":"{}","cat":"{}","pid":{},"tid":{},"ts":{:.1f},"dur":{:.1f},"args":{{"step":{},"mb":{},"chunk":{}}}}})",
                       span_name(s), s.what, d, r, s.start_us - origin, std::max(0.0, s.end_us - s.start_us), s.step, s.mb,
                       s.chunk));
      if (s.mb >= 0 && (s.what == "F" || s.what == "B" || s.what == "I"))
        pass[{d, s.step, s.mb, lay.stage(static_cast<int>(r), s.chunk), s.what == "F" ? 'F' : 'B'}] = &s;
    }
  }
  std::uint64_t id = 0;
  for (auto& [key, s] : pass) {
    auto [d, step, mb, stage, kind] = key;
    const int to = kind == 'F' ? stage + 1 : stage - 1;
    auto it = pass.find({d, step, mb, to, kind});
    if (it == pass.end() || lay.place(to).actor == lay.place(stage).actor) continue;
    const auto from_tid = lay.place(stage).actor, to_tid = lay.place(to).actor;
    ++id;
    emit(fmt::format(R"({{"ph":"s","name":"{}","cat":"transfer","id":{},"pid":{},"tid":{},"ts":{:.1f}}})",
                     kind == 'F' ? "activation" : "gradient", id, d, from_tid, s->end_us - origin));
    emit(fmt::format(R"({{"ph":"f","bp":"e","name":"{}","cat":"transfer","id":{},"pid":{},"tid":{},"ts":{:.1f}}})",
                     kind == 'F' ? "activation" : "gradient", id, d, to_tid, it->second->start_us - origin));
  }
  out << "\n]}\n";
  if (!out) throw Error(fmt::format("pipeline: writing the trace to {} failed", path));
}

// The pipeline as the run loop drives it.
class PipelineJob final : public train::Job {
 public:
  PipelineJob(Runtime& rt, const StageConfig& cfg, const PipelineOptions& opts, Mesh<Stage> mesh)
      : rt_(rt), cfg_(cfg), opts_(opts), mesh_(std::move(mesh)) {}
  // The stage actors end with the run (their worker processes too).
  ~PipelineJob() { train::detail::stop_mesh(mesh_); }

  void form() override {
    const auto K = static_cast<std::size_t>(cfg_.stages), D = static_cast<std::size_t>(cfg_.replicas);
    coll::GroupOptions pp;
    pp.name = "pp";
    pp.heap_bytes = 1 << 20;
    pp.timeout_ms = opts_.transfer_timeout_ms;
    if (cfg_.train.device != "cpu") pp.memory = "cuda";
    for (std::size_t d = 0; d < D; ++d) coll::create_group(rt_, mesh_.slice(d * K, (d + 1) * K), pp);
    if (D > 1) {
      coll::GroupOptions g;
      g.name = "pp_dp";
      g.timeout_ms = opts_.transfer_timeout_ms;
      if (cfg_.train.device != "cpu") g.memory = "cuda";
      for (std::size_t r = 0; r < K; ++r) {
        std::vector<ActorRef<Stage>> members;
        for (std::size_t d = 0; d < D; ++d) members.push_back(mesh_[d * K + r]);
        coll::create_group(rt_, members, g);
      }
    }
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
        mesh_, [&](auto& m) { return m.call(&Stage::train, n); }, kLimit, grace());
    const auto K = static_cast<std::size_t>(cfg_.stages), D = static_cast<std::size_t>(cfg_.replicas);
    const detail::Layout lay{cfg_.stages, cfg_.virtual_stages};
    const auto last_actor = static_cast<std::size_t>(lay.place(lay.S() - 1).actor);
    std::vector<StepStats> out(static_cast<std::size_t>(n));
    peak_.assign(per.size(), 0);
    for (std::size_t k = 0; k < out.size(); ++k) {
      double loss = 0, wall = 0;
      for (std::size_t a = 0; a < per.size(); ++a) {
        const auto& s = per[a].at(k);
        out[k].samples += s.samples;
        out[k].busy_s += s.busy_s;
        wall = std::max(wall, s.wall_s);
        peak_[a] = std::max(peak_[a], s.peak_live);
        if (a % K == last_actor) {
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
  EvalStats evaluate(std::int64_t limit) override {
    auto parts = train::detail::call_all<EvalStats>(mesh_, [&](auto& m) { return m.call(&Stage::evaluate, limit); }, kLimit, grace());
    return train::merge(parts);
  }
  std::uint64_t check_params(std::int64_t step) override {
    auto hashes = mesh_.call(&Stage::param_hash).get(kLimit);
    const auto K = static_cast<std::size_t>(cfg_.stages);
    // The copies of a stage applied the same averaged gradients: any difference is a bug.
    for (std::size_t a = K; a < hashes.size(); ++a)
      if (hashes[a] != hashes[a % K])
        throw Error(fmt::format("pipeline: stage {} of replica {} differs from replica 0's after step {}", a % K, a / K,
                                step));
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t r = 0; r < K; ++r) h = (h ^ hashes[r]) * 1099511628211ull;
    return h;
  }
  // A checkpoint is a file per stage (replica 0's: the copies are equal)
  // and, written last and atomically, the file naming them: a crash while
  // saving leaves the previous checkpoint whole.
  void save(const std::string& path, std::int64_t step) override {
    const auto K = static_cast<std::size_t>(cfg_.stages);
    const fs::path dir = fs::path(path).parent_path();
    std::vector<std::string> files;
    std::vector<Ref<std::int64_t>> refs;
    for (std::size_t r = 0; r < K; ++r) {
      files.push_back(fmt::format("pipeline-step{}-stage{}.troupeck", step, r));
      refs.push_back(mesh_[r].call(&Stage::save, (dir / files.back()).string()));
    }
    for (auto& r : refs) r.get(kLimit);
    ckpt::Checkpoint manifest;
    manifest.meta = {{"kind", "troupe.pipeline"},
                     {"step", std::to_string(step)},
                     {"stages", std::to_string(K)},
                     {"blocks", fmt::format("{}", fmt::join(cfg_.block_bounds, ","))},
                     {"files", fmt::format("{}", fmt::join(files, ","))}};
    ckpt::save(path, manifest);
    // The files of older checkpoints go.
    for (auto& e : fs::directory_iterator(dir)) {
      const auto name = e.path().filename().string();
      if (name.rfind("pipeline-step", 0) == 0 && std::find(files.begin(), files.end(), name) == files.end()) {
        std::error_code ec;
        fs::remove(e.path(), ec);
      }
    }
  }
  std::int64_t load(const std::string& path) override {
    const ckpt::Checkpoint manifest = ckpt::load(path);
    auto get = [&](const std::string& key) {
      auto it = manifest.meta.find(key);
      if (it == manifest.meta.end())
        throw ckpt::CheckpointError(fmt::format("{}: not a pipeline checkpoint (no '{}')", path, key));
      return it->second;
    };
    if (get("kind") != "troupe.pipeline")
      throw ckpt::CheckpointError(fmt::format("{}: a '{}' checkpoint, not a pipeline's", path, get("kind")));
    const auto K = static_cast<std::size_t>(cfg_.stages);
    if (get("stages") != std::to_string(K))
      throw ckpt::CheckpointError(
          fmt::format("{}: written by a pipeline of {} stages, but this run has {}", path, get("stages"), K));
    std::vector<std::string> files;
    for (std::size_t at = 0, next; at <= get("files").size(); at = next + 1) {
      next = get("files").find(',', at);
      if (next == std::string::npos) next = get("files").size();
      files.push_back(get("files").substr(at, next - at));
    }
    if (files.size() != K) throw ckpt::CheckpointError(fmt::format("{}: names {} stage files for {} stages", path, files.size(), K));
    const fs::path dir = fs::path(path).parent_path();
    auto steps = train::detail::call_all<std::int64_t>(
        mesh_, [&](auto& m) {
          std::size_t a = 0;
          while (mesh_[a].id() != m.id()) ++a;
          return m.call(&Stage::load, (dir / files[a % K]).string());
        },
        kLimit);
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
    write_trace(path, spans, cfg_.stages, cfg_.virtual_stages);
  }
  const std::vector<std::string>& held() const { return held_; }
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
};

}  // namespace

PipelineTrainer::PipelineTrainer(Runtime& rt, train::TrainConfig cfg, PipelineOptions opts)
    : rt_(rt), opts_(std::move(opts)) {
  const auto& o = opts_;
  if (o.stages < 1 || o.microbatches < 1 || o.virtual_stages < 1 || o.replicas < 1)
    throw UsageError(fmt::format("pipeline: stages ({}), microbatches ({}), virtual_stages ({}) and replicas ({}) must "
                                 "each be at least 1",
                                 o.stages, o.microbatches, o.virtual_stages, o.replicas));
  if (o.stages * o.replicas > static_cast<int>(coll::kMaxRanks))
    throw UsageError(fmt::format("pipeline: {} stages x {} replicas = {} stage actors (at most {})", o.stages,
                                 o.replicas, o.stages * o.replicas, coll::kMaxRanks));
  if (o.chunk_steps < 1) throw UsageError("pipeline: chunk_steps must be at least 1");
  if (o.max_failures < -1)
    throw UsageError(fmt::format("pipeline: max_failures {}: at least 0, or -1 for no limit", o.max_failures));
  if (cfg.clip_norm > 0)
    throw UsageError("pipeline: clip_norm ([optimizer] clip_norm) is not supported with pipelines yet: the norm spans "
                     "every stage; set it to 0");
  if (cfg.accumulation != 1 && cfg.accumulation != o.microbatches)
    throw UsageError(fmt::format("pipeline: accumulation {} with {} micro-batches: a pipeline accumulates over its "
                                 "micro-batches ([pipeline] microbatches); leave accumulation at 1",
                                 cfg.accumulation, o.microbatches));
  cfg.accumulation = o.microbatches;
  const compute::Device dev = train::device_of(cfg.device);
  if (dev.is_cuda() && o.processes && cfg.device != "cuda")
    throw UsageError(fmt::format("pipeline: device '{}' with stages in worker processes: each worker trains on the GPU "
                                 "it was given; say \"cuda\"",
                                 cfg.device));
  if (cfg.precision != "f32")
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
    if (o.schedule.find(':') != std::string::npos) {
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
  }
  // The split: blocks per model stage.
  const auto blocks = model_blocks(cfg);
  const int S = o.stages * o.virtual_stages;
  std::vector<std::int64_t> cut;  // in blocks
  if (!o.layers.empty()) {
    if (static_cast<int>(o.layers.size()) != S)
      throw OptionError("pipeline.layers", fmt::format("pipeline: {} layer ranges for {} model stages ({} stages x {} virtual stages)",
                                   o.layers.size(), S, o.stages, o.virtual_stages));
    std::int64_t at = 0;
    for (std::size_t s = 0; s < o.layers.size(); ++s) {
      auto [b, e] = o.layers[s];
      if (b != at || e <= b || e > static_cast<std::int64_t>(blocks.size()))
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
  } else {
    std::vector<double> costs;
    if (o.split == Split::time) {
      costs = measure_blocks(cfg, blocks);
    } else {
      nn::Model m = train::make_model(cfg);
      for (auto [b, e] : blocks) {
        double n = 0;
        for (auto i = b; i < e; ++i)
          for (auto* p : m.layer_params(static_cast<std::size_t>(i))) n += static_cast<double>(p->value.numel());
        costs.push_back(n);
      }
    }
    try {
      cut = balance(costs, S);
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
          for (std::size_t at = 0, next; at < it->second.size(); at = next + 1) {
            next = it->second.find(',', at);
            if (next == std::string::npos) next = it->second.size();
            saved.push_back(std::stoll(it->second.substr(at, next - at)));
          }
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
  std::string s = fmt::format("pipeline: {} stages x {} virtual x {} replicas, {} micro-batches of {}, schedule {}, split "
                              "by {}\n",
                              opts_.stages, opts_.virtual_stages, opts_.replicas, opts_.microbatches, cfg_.train.batch,
                              opts_.schedule.find(':') != std::string::npos ? std::string("(written)") : opts_.schedule,
                              split_name(opts_.split));
  for (std::size_t i = 0; i < blocks_.size(); ++i)
    s += fmt::format("  model stage {} (stage {}): blocks [{}, {})\n", i, i % static_cast<std::size_t>(opts_.stages),
                     blocks_[i].first, blocks_[i].second);
  s += fmt::format("  schedule bubble {:.1f}% (simulated, F = 1, B = 2), peak activations per stage {}",
                   100 * report_.bubble, fmt::join(report_.peak_activations, " "));
  return s;
}

train::FitResult PipelineTrainer::fit(const std::function<void(const train::Progress&)>& on_progress) {
  const auto n = static_cast<std::size_t>(opts_.stages * opts_.replicas);
  Options o = opts_.actor_options;
  if (opts_.processes) o.process();
  if (!opts_.checkpoint_dir.empty()) o.max_restarts(opts_.max_failures);
  auto mesh = [&]() {
    try {
      return rt_.spawn_mesh<Stage>(n, cfg_, o);
    } catch (const Infeasible& e) {
      auto [each, here] = train::detail::describe_request(o);
      std::string total;
      if (auto it = o.resources_.find("CPU"); it != o.resources_.end())
        total = fmt::format(", {} CPUs in all", it->second * static_cast<double>(n));
      throw Infeasible(fmt::format("pipeline: {} stage actors ({} stages x {} replicas), each asking for {}{}, do not "
                                   "fit on this cluster; ask for fewer stages or replicas, or less per stage "
                                   "([resources] cpus / gpus). {}{}",
                                   n, opts_.stages, opts_.replicas, each, total, e.what(), here));
    }
  }();
  PipelineJob job(rt_, cfg_, opts_, std::move(mesh));
  train::LoopOptions lo;
  lo.what = "pipeline";
  lo.epochs = cfg_.train.epochs;
  lo.chunk_steps = opts_.chunk_steps;
  lo.eval_limit = opts_.eval_limit;
  lo.eval_each_epoch = opts_.eval_each_epoch;
  lo.checkpoint = checkpoint_path();
  lo.checkpoint_every = opts_.checkpoint_every;
  lo.resume = opts_.resume;
  lo.max_failures = opts_.max_failures;
  lo.warmup_steps = cfg_.train.warmup_steps;
  lo.lr = cfg_.train.lr;
  auto r = train::run(job, lo, on_progress);
  r.peak_activations = job.peak();
  if (!opts_.trace.empty()) job.trace(opts_.trace);
  return r;
}

}  // namespace troupe::pipeline
