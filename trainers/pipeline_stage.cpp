// A pipeline stage actor: its chunks, groups and shape agreement (setup), its
// state and checkpoints; its step of the schedule is in pipeline_step.cpp.
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actors/ckpt/checkpoint.hpp"
#include "actors/compute/ops.hpp"
#include "trainers/detail/pipeline_detail.hpp"
#include "trainers/detail/stage_impl.hpp"
#include "trainers/pipeline.hpp"

namespace troupe::pipeline {

using namespace stage_detail;

using compute::Tensor;

Stage::Stage(StageConfig cfg) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  train::check_config(cfg.train, {.devices_here = true});
  if (cfg.stages < 1 || cfg.virtual_stages < 1 || cfg.replicas < 1 || cfg.tensor_parallel < 1)
    throw UsageError(fmt::format("pipeline stage: stages {}, virtual_stages {}, replicas {} and tensor_parallel {} must "
                                 "be at least 1",
                                 cfg.stages, cfg.virtual_stages, cfg.replicas, cfg.tensor_parallel));
  const auto S = static_cast<std::size_t>(cfg.stages * cfg.virtual_stages);
  if (cfg.bounds.size() != S + 1)
    throw UsageError(fmt::format("pipeline stage: {} layer bounds for {} model stages (expected {})", cfg.bounds.size(), S,
                                 S + 1));
  m.cfg = std::move(cfg);
  m.lay = detail::Layout{m.cfg.stages, m.cfg.virtual_stages};
  m.dev = train::device_of(m.cfg.train.device);
  compute::set_num_threads(m.cfg.train.threads);
  m.train_set = train::load_train(m.cfg.train);
  m.test_set = train::load_test(m.cfg.train);
  const std::int64_t layers = model_blocks(m.cfg.train).back().second;  // the model is built at setup
  if (m.cfg.bounds.front() != 0 || m.cfg.bounds.back() != layers ||
      !std::is_sorted(m.cfg.bounds.begin(), m.cfg.bounds.end()) ||
      std::adjacent_find(m.cfg.bounds.begin(), m.cfg.bounds.end()) != m.cfg.bounds.end())
    throw UsageError(fmt::format("pipeline stage: layer bounds {} do not cut the model's {} layers into non-empty stages",
                                 fmt::join(m.cfg.bounds, ","), layers));
  m.opt = train::make_optimizer(m.cfg.train);
  m.lr = train::make_lr_schedule(m.cfg.train);
}

Stage::~Stage() = default;

Task<std::string> Stage::setup() {
  auto& m = *impl_;
  m.pp = coll::group("pp");
  m.r = m.pp->rank();
  if (m.pp->size() != static_cast<std::uint32_t>(m.lay.K))
    throw UsageError(fmt::format("pipeline stage: group 'pp' has {} members but the pipeline has {} stages",
                                 m.pp->size(), m.lay.K));
  m.d = 0;
  m.dpg.reset();
  if (m.cfg.replicas > 1) {
    m.dpg = coll::group("pp_dp");
    m.d = m.dpg->rank();
  }
  m.t = 0;
  m.tpg.reset();
  if (m.T() > 1) {
    m.tpg = coll::group("tp");
    m.t = m.tpg->rank();
    if (m.tpg->size() != static_cast<std::uint32_t>(m.T()))
      throw UsageError(fmt::format("pipeline stage: group 'tp' has {} members but the stages are split over {}",
                                   m.tpg->size(), m.T()));
    if (m.dev.is_cuda()) m.tpg->after(nullptr);  // sums wait for what the compute queued
  }
  {
    const Schedule sched = parse(m.cfg.schedule);
    m.actions = sched.actions.at(m.r);
    // A device group takes a pair's transfers in posted order: post each run
    // of transfers as one batch, in the order both ends agree on. Host groups
    // post each transfer alone.
    m.comm_groups.clear();
    if (m.pp->p2p_in_order() || m.cfg.batch_transfers) {
      m.comm_groups = transfer_groups(sched).at(m.r);
    } else {
      for (std::size_t i = 0; i < m.actions.size(); ++i)
        if (detail::is_comm(m.actions[i].op)) m.comm_groups.push_back({i});
    }
  }
  m.stream = std::make_unique<train::DataStream>(m.train_set, m.cfg.train, static_cast<std::uint32_t>(m.cfg.replicas), m.d);
  // Take this actor's chunks (fresh from the seed: a rebuilt stage restores a
  // checkpoint next); in a 3-D run this tp rank's part of them, whose split
  // layers sum over the tp group (waited for: the layers are synchronous).
  nn::TensorParallel tp{static_cast<int>(m.t), m.T(), {}};
  if (m.tpg)
    tp.sum = [g = m.tpg](Tensor& x) { g->allreduce(std::span<float>(x.f32(), static_cast<std::size_t>(x.numel()))).get(); };
  const nn::Model whole = m.T() > 1 ? train::make_model(m.cfg.train, tp) : train::make_model(m.cfg.train);
  m.chunks.clear();
  m.chunk_width.clear();
  m.split.clear();
  std::string held;
  for (int c = 0; c < m.lay.v; ++c) {
    const int s = m.model_stage(c);
    const auto b = static_cast<std::size_t>(m.cfg.bounds[static_cast<std::size_t>(s)]);
    const auto e = static_cast<std::size_t>(m.cfg.bounds[static_cast<std::size_t>(s) + 1]);
    m.chunks.push_back(whole.slice(b, e));
    if (m.dev.is_cuda()) m.chunks.back().to(m.dev);
    m.chunk_width.push_back(widths(m.chunks.back()));
    m.split.push_back(split_params(m.chunks.back()));
    held += fmt::format("{}model stage {} = blocks [{}, {}) (layers [{}, {}), {} parameters)", c ? "; " : "", s,
                        m.cfg.block_bounds.at(static_cast<std::size_t>(s)),
                        m.cfg.block_bounds.at(static_cast<std::size_t>(s) + 1), b, e, m.chunks.back().num_params());
  }
  m.opt = train::make_optimizer(m.cfg.train);
  m.step = 0;
  // Hybrid: each chunk's gradients live in the gradient group's buffer, so
  // REDUCE_GRAD all-reduces them in place.
  m.grad_bufs.clear();
  if (m.dpg) {
    for (auto& ch : m.chunks) {
      std::int64_t n = 0;
      for (auto* p : ch.params()) n += p->value.numel();
      auto buf = co_await m.dpg->alloc<float>(static_cast<std::size_t>(n));
      std::int64_t off = 0;
      for (auto* p : ch.params()) {
        p->grad = Tensor::wrap(buf.data() + off, p->value.shape(), m.dev, m.dpg);
        p->grad.zero();
        p->grad_valid = false;
        off += p->value.numel();
      }
      m.grad_bufs.push_back(buf);
    }
  }
  if (m.lr.total_steps == 0) m.lr.total_steps = m.cfg.train.epochs * m.stream->steps_per_epoch();
  // Neighbours agree on what passes between them before anything trains:
  // (features, dtype) from the giving stage to the taking one.
  const auto dtype_code = static_cast<std::int64_t>(compute::DType::f32);
  std::vector<std::vector<std::int64_t>> gives, takes;
  gives.reserve(static_cast<std::size_t>(m.lay.v));  // the batch holds spans into them
  takes.reserve(static_cast<std::size_t>(m.lay.v));
  coll::Group::Batch shapes;
  std::vector<int> taking_chunks;
  for (int c = 0; c < m.lay.v; ++c) {
    const int s = m.model_stage(c);
    if (m.lay.remote(s, +1)) {
      gives.push_back({s, m.chunk_width[static_cast<std::size_t>(c)].second, dtype_code});
      shapes.send(std::span<const std::int64_t>(gives.back()), m.actor_of(s + 1), kTagShape);
    }
  }
  for (int c = 0; c < m.lay.v; ++c) {
    const int s = m.model_stage(c);
    if (m.lay.remote(s, -1)) {
      takes.push_back(std::vector<std::int64_t>(3));
      taking_chunks.push_back(c);
      shapes.recv(std::span<std::int64_t>(takes.back()), m.actor_of(s - 1), kTagShape);
    }
  }
  if (!shapes.empty()) co_await m.pp->batch(std::move(shapes));
  for (std::size_t i = 0; i < takes.size(); ++i) {
    const int c = taking_chunks[i];
    const int s = m.model_stage(c);
    const auto want = m.chunk_width[static_cast<std::size_t>(c)].first;
    if (takes[i][0] != s - 1 || takes[i][1] != want || takes[i][2] != dtype_code)
      throw UsageError(fmt::format(
          "pipeline: stage {} (model stage {}) takes {} features of {} from model stage {}, but stage {} (model stage "
          "{}) gives {} features of {}: the two stages were built from different models or splits",
          m.r, s, want, compute::dtype_name(compute::DType::f32), s - 1, m.actor_of(s - 1), takes[i][0], takes[i][1],
          compute::dtype_name(static_cast<compute::DType>(takes[i][2]))));
  }
  m.ready = true;
  if (m.T() > 1) co_return fmt::format("stage {} tp rank {}: {}", m.r, m.t, held);
  co_return fmt::format("stage {}: {}", m.r, held);
}

void Stage::fail_groups(std::exception_ptr e) {
  auto& m = *impl_;
  std::string what = "unknown error";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
  }
  const std::string why = m.T() > 1 ? fmt::format("stage {} (tp rank {}) of pipeline replica {} failed: {}", m.r, m.t, m.d, what)
                                     : fmt::format("stage {} of pipeline replica {} failed: {}", m.r, m.d, what);
  if (m.pp) m.pp->abort(why);
  if (m.dpg) m.dpg->abort(why);
  if (m.tpg) m.tpg->abort(why);
}

Task<std::vector<train::StepStats>> Stage::train(std::int64_t n) {
  std::exception_ptr e;
  try {
    co_return co_await run_steps(n);
  } catch (...) {
    e = std::current_exception();
  }
  fail_groups(e);
  std::rethrow_exception(e);
}

Task<train::EvalStats> Stage::evaluate(std::int64_t limit) {
  std::exception_ptr e;
  try {
    co_return co_await run_eval(limit);
  } catch (...) {
    e = std::current_exception();
  }
  fail_groups(e);
  std::rethrow_exception(e);
}

std::int64_t Stage::steps_per_epoch() {
  auto& m = *impl_;
  return train::DataStream(m.train_set, m.cfg.train, static_cast<std::uint32_t>(m.cfg.replicas), 0).steps_per_epoch();
}

std::vector<NamedValues> Stage::parameters() {
  std::vector<NamedValues> out;
  for (auto* p : impl_->params()) out.push_back({p->name, p->value.to_vector()});
  return out;
}

std::uint64_t Stage::param_hash() { return train::param_hash(impl_->params()); }

std::int64_t Stage::save(std::string path) {
  auto& m = *impl_;
  if (!m.ready) throw UsageError("pipeline stage: save() before setup()");
  auto meta = m.identity();
  meta["kind"] = "troupe.pipeline.stage";
  meta["step"] = std::to_string(m.step);
  meta["epoch"] = std::to_string(m.stream->epoch());
  meta["batches_used"] = std::to_string(m.stream->used());
  ckpt::save(path, ckpt::snapshot(m.params(), m.opt.get(), meta));
  return m.step;
}

std::int64_t Stage::load(std::string path) {
  auto& m = *impl_;
  if (!m.ready) throw UsageError("pipeline stage: load() before setup()");
  const ckpt::Checkpoint c = ckpt::load(path);
  const std::string what = "a pipeline stage";
  c.check("troupe.pipeline.stage", m.identity(), path, what);
  auto get = [&](const std::string& key) { return c.require(key, path, what); };
  ckpt::restore(c, m.params(), m.dev, m.opt.get());
  m.step = std::stoll(get("step"));
  m.stream->seek(std::stoll(get("epoch")), std::stoll(get("batches_used")));
  return m.step;
}

std::int64_t Stage::reshard(std::string path) {
  auto& m = *impl_;
  if (!m.ready) throw UsageError("pipeline stage: reshard() before setup()");
  namespace fs = std::filesystem;
  const ckpt::Checkpoint manifest = ckpt::load(path);
  const std::string what = "a pipeline";
  manifest.check("troupe.pipeline", {}, path, what);
  const auto files = detail::split_list(manifest.require("files", path, what));
  const auto tp_it = manifest.meta.find("tensor_parallel");
  const int T_old = tp_it == manifest.meta.end() ? 1 : std::stoi(tp_it->second);
  // Every part that run saved, by tp rank; the model and optimizer must be
  // this run's (the layout may differ: that is the point).
  const auto id = m.identity_common();
  std::vector<ckpt::Checkpoint> parts;
  std::vector<int> part_rank;
  std::string old_blocks;
  for (const auto& f : files) {
    const std::string file = (fs::path(path).parent_path() / f).string();
    parts.push_back(ckpt::load(file));
    const auto& c = parts.back();
    c.check("troupe.pipeline.stage", {{"model", id.at("model")}, {"optimizer", id.at("optimizer")}, {"seed", id.at("seed")}},
            file, "a pipeline stage");
    const auto r = c.meta.find("tp_rank");
    part_rank.push_back(r == c.meta.end() ? 0 : std::stoi(r->second));
    if (const auto b = c.meta.find("tp_blocks"); b != c.meta.end()) old_blocks = b->second;
  }
  // How each parameter lay over the old tp ranks, and lies over this run's.
  train::TrainConfig old_cfg = m.cfg.train;
  old_cfg.tp_blocks.clear();
  if (T_old > 1 && !old_blocks.empty())
    for (const auto& b : detail::split_list(old_blocks)) old_cfg.tp_blocks.push_back(std::stoll(b));
  const auto old_layout = nn::mlp_param_layouts(train::mlp_spec(old_cfg), T_old);
  const auto new_layout = nn::mlp_param_layouts(train::mlp_spec(m.cfg.train), m.T());
  // A tensor named `name` ("model/2.weight", "optim/2.weight.momentum") of
  // parameter `param`, whole, from the old parts.
  auto whole = [&](const std::string& name, const std::string& param) {
    std::vector<Tensor> by_rank(static_cast<std::size_t>(T_old));
    for (std::size_t i = 0; i < parts.size(); ++i)
      if (const Tensor* t = parts[i].find(name))
        if (part_rank[i] >= 0 && part_rank[i] < T_old) by_rank[static_cast<std::size_t>(part_rank[i])] = *t;
    if (!by_rank[0].defined())
      throw ckpt::CheckpointError(fmt::format("{}: no part of '{}' from tp rank 0 in the files it names", path, name));
    return nn::tp_unshard(by_rank, old_layout.count(param) ? old_layout.at(param) : nn::TpLayout::whole);
  };
  ckpt::Checkpoint mine;
  mine.meta = parts.at(0).meta;  // optimizer kind, steps and learning rate, step
  for (auto* p : m.params()) {
    const auto how = new_layout.count(p->name) ? new_layout.at(p->name) : nn::TpLayout::whole;
    auto cut = [&](const Tensor& full) { return nn::tp_shard(full, how, static_cast<int>(m.t), m.T()); };
    mine.tensors.emplace_back("model/" + p->name, cut(whole("model/" + p->name, p->name)));
    // Its optimizer state (none before the first step).
    const std::string prefix = "optim/" + p->name + ".";
    std::vector<std::string> states;
    for (const auto& c : parts)
      for (const auto& [name, t] : c.tensors)
        if (name.rfind(prefix, 0) == 0 && name.find('.', prefix.size()) == std::string::npos &&
            std::find(states.begin(), states.end(), name) == states.end())
          states.push_back(name);
    for (const auto& name : states) mine.tensors.emplace_back(name, cut(whole(name, p->name)));
  }
  ckpt::restore(mine, m.params(), m.dev, m.opt.get());
  m.step = std::stoll(mine.require("step", path, what));
  // A step of another global batch (replicas x micro-batches x batch): go on
  // from the same number of examples seen, so epochs and the learning-rate
  // schedule keep their meaning.
  auto meta_int = [&](const char* key, std::int64_t otherwise) {
    auto it = mine.meta.find(key);
    return it == mine.meta.end() ? otherwise : std::stoll(it->second);
  };
  const std::int64_t here = m.cfg.train.batch * m.M() * m.cfg.replicas;
  const std::int64_t there = meta_int("batch", m.cfg.train.batch) * meta_int("microbatches", m.M()) *
                             meta_int("replicas", m.cfg.replicas);
  if (there != here) m.step = m.step * there / here;
  // The data position from the step: this layout's replicas split the data
  // their own way.
  const std::int64_t spe = m.stream->steps_per_epoch();
  if (m.step == 0 || spe == 0) {
    m.stream->seek(0, 0);
  } else {
    const std::int64_t epoch = (m.step - 1) / spe;
    m.stream->seek(epoch, (m.step - epoch * spe) * m.M());
  }
  return m.step;
}

std::vector<NamedValues> Stage::optimizer_state() {
  std::vector<NamedValues> out;
  if (impl_->opt)
    for (auto& [name, t] : impl_->opt->state()) out.push_back({name, t.to_vector()});
  return out;
}

std::vector<StageSpan> Stage::timeline() {
  auto& m = *impl_;
  std::vector<StageSpan> out(m.spans.begin(), m.spans.end());
  m.spans.clear();
  return out;
}

int Stage::pid() const { return static_cast<int>(::getpid()); }

}  // namespace troupe::pipeline

TROUPE_ACTOR(troupe::pipeline::Stage, setup, train, evaluate, steps_per_epoch, parameters, param_hash, save, load,
             reshard, optimizer_state, timeline, pid);
