#pragma once
// Internal to trainers/pipeline_stage.cpp (setup, state, checkpoints) and
// pipeline_step.cpp (a step of the schedule, the evaluation): what a stage
// actor holds.
#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actors/nn/layers.hpp"
#include "actors/nn/loss.hpp"
#include "actors/nn/tensor_parallel.hpp"
#include "runtime/coll/group.hpp"
#include "trainers/detail/schedule_layout.hpp"
#include "trainers/pipeline.hpp"

namespace troupe::pipeline {

using compute::Tensor;

namespace stage_detail {

inline constexpr std::uint32_t kTagAct = 0, kTagGrad = 1, kTagEval = 2, kTagShape = 3;
inline constexpr std::size_t kMaxSpans = 200000;

inline double now_us() {
  using namespace std::chrono;
  return static_cast<double>(duration_cast<microseconds>(system_clock::now().time_since_epoch()).count());
}

inline std::span<const float> cview(const Tensor& t) { return {t.f32(), static_cast<std::size_t>(t.numel())}; }
inline std::span<float> view(Tensor& t) { return {t.f32(), static_cast<std::size_t>(t.numel())}; }

// The widths a chunk takes and gives (its first and last linear layers; a
// split one's unsplit widths: no cut falls inside a split block, so what
// passes between stages is whole).
inline std::pair<std::int64_t, std::int64_t> widths(nn::Model& m) {
  std::int64_t in = -1, out = -1;
  for (std::size_t i = 0; i < m.size(); ++i) {
    std::int64_t li = -1, lo = -1;
    if (auto* l = dynamic_cast<nn::Linear*>(&m.layer(i))) {
      li = l->in_features();
      lo = l->out_features();
    } else if (auto* p = dynamic_cast<nn::ParallelLinear*>(&m.layer(i))) {
      li = p->in_features();
      lo = p->out_features();
    } else {
      continue;
    }
    if (in < 0) in = li;
    out = lo;
  }
  return {in, out};
}

// Whether each of a chunk's parameters (in params() order) is split over the
// tp ranks (a part on each, or on one) rather than whole on every one.
inline std::vector<bool> split_params(nn::Model& m) {
  std::vector<bool> out;
  for (std::size_t i = 0; i < m.size(); ++i) {
    const bool split = dynamic_cast<nn::ParallelLinear*>(&m.layer(i)) != nullptr;
    for (std::size_t k = 0; k < m.layer_params(i).size(); ++k) out.push_back(split);
  }
  return out;
}

}  // namespace stage_detail

struct Stage::Impl {
  StageConfig cfg;
  detail::Layout lay{1, 1};
  compute::Device dev;
  std::vector<Action> actions;  // this actor's list
  // The transfers of `actions` as they are posted, in list order: runs of
  // them as one batch each on device groups (transfer_groups), each alone on
  // host groups.
  std::vector<std::vector<std::size_t>> comm_groups;
  std::uint32_t r = 0, d = 0, t = 0;  // stage (pp rank), replica (dp rank), tp rank
  std::shared_ptr<coll::Group> pp, dpg, tpg;  // tpg: 3-D runs' tensor-parallel group
  std::vector<std::vector<bool>> split;  // per chunk: which parameters are split over tp (split_params)
  std::vector<nn::Model> chunks;   // chunk c = model stage c*K + r
  std::vector<std::pair<std::int64_t, std::int64_t>> chunk_width;  // (in, out) per chunk
  std::vector<std::span<float>> grad_bufs;  // hybrid: each chunk's gradients in the dp group's buffer
  std::unique_ptr<optim::Optimizer> opt;
  optim::LrSchedule lr;
  data::Dataset train_set, test_set;
  std::unique_ptr<train::DataStream> stream;
  std::int64_t step = 0;
  nn::CrossEntropy ce;
  std::vector<std::unique_ptr<nn::Tape>> free_tapes;
  std::deque<StageSpan> spans;
  bool ready = false;

  int M() const { return cfg.train.accumulation; }
  int model_stage(int c) const { return lay.stage(static_cast<int>(r), c); }
  bool first(int c) const { return model_stage(c) == 0; }
  bool last(int c) const { return model_stage(c) == lay.S() - 1; }
  bool needs_x() const {
    for (int c = 0; c < lay.v; ++c)
      if (first(c)) return true;
    return false;
  }
  bool needs_y() const {
    for (int c = 0; c < lay.v; ++c)
      if (last(c)) return true;
    return false;
  }
  std::uint32_t actor_of(int s) const { return static_cast<std::uint32_t>(lay.place(s).actor); }

  std::vector<nn::Param*> params() {
    std::vector<nn::Param*> out;
    for (auto& m : chunks)
      for (auto* p : m.params()) out.push_back(p);
    return out;
  }
  std::unique_ptr<nn::Tape> take_tape() {
    if (free_tapes.empty()) return std::make_unique<nn::Tape>();
    auto t = std::move(free_tapes.back());
    free_tapes.pop_back();
    return t;
  }
  void record(const char* what, int mb, int chunk, double t0, double t1) {
    if (spans.size() >= stage_detail::kMaxSpans) spans.pop_front();
    spans.push_back(StageSpan{what, mb, chunk, step, t0, t1});
    to_trace(trace::Kind::phase, what, t0, t1, mb);  // `what` is a literal: it outlives the trace
  }
  // `troupe trace`: a span timed with now_us() (the wall clock, in us).
  static void to_trace(trace::Kind kind, const char* what, double t0_us, double t1_us, std::int64_t arg) {
    if (!trace::on()) return;
    // Wall minus steady, in us, taken once (per call, its jitter made
    // neighbouring spans overlap); the difference of two such large
    // doubles is exact to well under a nanosecond.
    static const double off_us = stage_detail::now_us() - static_cast<double>(trace::now_ns()) / 1000.0;
    trace::span(kind, what, static_cast<std::int64_t>((t0_us - off_us) * 1000.0),
                static_cast<std::int64_t>((t1_us - off_us) * 1000.0), arg);
  }
  int T() const { return cfg.tensor_parallel; }
  std::map<std::string, std::string> identity() const {
    auto id = identity_common();
    if (T() > 1) {
      id["tensor_parallel"] = std::to_string(T());
      id["tp_rank"] = std::to_string(t);
      id["tp_blocks"] = fmt::format("{}", fmt::join(cfg.train.tp_blocks, ","));
    }
    return id;
  }
  std::map<std::string, std::string> identity_common() const {
    return {{"stages", std::to_string(lay.K)},
            {"virtual_stages", std::to_string(lay.v)},
            {"replicas", std::to_string(cfg.replicas)},
            {"stage", std::to_string(r)},
            {"blocks", fmt::format("{}", fmt::join(cfg.block_bounds, ","))},
            {"microbatches", std::to_string(M())},
            {"model", train::model_text(cfg.train)},
            {"batch", std::to_string(cfg.train.batch)},
            {"seed", std::to_string(cfg.train.seed)},
            {"train_examples", std::to_string(train_set.size())},
            {"optimizer", std::string(to_string(cfg.train.optimizer))}};
  }
};

}  // namespace troupe::pipeline
