#pragma once
// Shared by the pipeline suites (pipeline_test, pipeline_3d_test): a small
// model, the unsplit reference run, in-process pipeline runs and their
// comparison.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "actors/compute/ops.hpp"
#include "actors/nn/loss.hpp"
#include "runtime/troupe.hpp"
#include "trainers/pipeline.hpp"

namespace troupe::test {

using compute::Tensor;

// 8 blocks (7 hidden layers, dropout drawn per micro-batch), small enough that
// 48 pipelines train in seconds.
inline train::TrainConfig small_model() {
  train::TrainConfig c;
  c.hidden = {40, 36, 32, 28, 24, 20, 16};
  c.dropout = 0.1f;
  c.batch = 8;
  c.train_limit = 512;
  c.epochs = 1;
  c.lr = 0.05f;
  c.momentum = 0.9f;
  c.threads = 1;
  return c;
}

struct Run {
  std::vector<float> losses;
  std::map<std::string, std::vector<float>> params;
};

// One process, the whole model, gradient accumulation over M micro-batches.
inline Run reference(train::TrainConfig cfg, int M, int steps) {
  cfg.accumulation = M;
  cfg.train_limit = steps * cfg.batch * M;  // one epoch of `steps` steps, as run_pipeline has
  compute::set_num_threads(cfg.threads);
  auto data = train::load_train(cfg);
  nn::Model model = train::make_model(cfg);
  auto opt = train::make_optimizer(cfg);
  auto lr = train::make_lr_schedule(cfg);
  train::DataStream stream(data, cfg, 1, 0);
  if (lr.total_steps == 0) lr.total_steps = cfg.epochs * stream.steps_per_epoch();
  nn::Tape tape;
  nn::CrossEntropy ce;
  Run r;
  for (int step = 0; step < steps; ++step) {
    opt->set_lr(lr.at(step));
    model.zero_grad();
    double loss = 0;
    for (int mb = 0; mb < M; ++mb) {
      Tensor x, y;
      stream.next(x, y);
      Tensor d = ce.forward_backward(model.forward(x, tape, {true, train::micro_seed(cfg, step, mb, 0)}), y);
      if (M > 1) compute::scale_(d, 1.0f / static_cast<float>(M));
      model.backward(d, tape);
      loss += ce.loss();
    }
    if (cfg.clip_norm > 0) optim::clip_grad_norm(model.params(), cfg.clip_norm);
    opt->step(model.params());
    r.losses.push_back(static_cast<float>(loss / M));
  }
  for (auto* p : model.params()) r.params[p->name] = p->value.to_vector();
  return r;
}

inline pipeline::PipelineOptions in_process(int K, int M, const std::string& schedule, int v = 1) {
  pipeline::PipelineOptions o;
  o.stages = K;
  o.microbatches = M;
  o.virtual_stages = v;
  o.schedule = schedule;
  o.processes = false;
  o.eval_limit = 200;
  o.eval_each_epoch = false;
  return o;
}

// Trains `steps` steps; the parameters of every stage at the end.
inline Run run_pipeline(Runtime& rt, const train::TrainConfig& cfg, pipeline::PipelineOptions o, int steps,
                 train::FitResult* result = nullptr) {
  o.chunk_steps = steps;
  Run out;
  o.after_chunk = [&](std::int64_t, Mesh<pipeline::Stage>& stages) {
    for (std::size_t r = 0; r < static_cast<std::size_t>(o.stages); ++r)
      for (auto& p : stages[r].call(&pipeline::Stage::parameters).get(std::chrono::seconds(60)))
        out.params[p.name] = p.values;
  };
  train::TrainConfig c = cfg;
  c.train_limit = steps * cfg.batch * o.microbatches * o.replicas;  // one epoch of `steps` steps
  pipeline::PipelineTrainer exact(rt, c, o);
  auto r = exact.fit();
  out.losses = r.losses;
  if (result) *result = r;
  return out;
}

inline void require_same(const Run& pipe, const Run& ref) {
  REQUIRE(pipe.losses.size() == ref.losses.size());
  for (std::size_t i = 0; i < ref.losses.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(pipe.losses[i] == ref.losses[i]);  // bit for bit
  }
  REQUIRE(pipe.params.size() == ref.params.size());
  for (auto& [name, values] : ref.params) {
    INFO("parameter " << name);
    auto it = pipe.params.find(name);
    REQUIRE(it != pipe.params.end());
    CHECK(it->second == values);
  }
}

}  // namespace troupe::test
