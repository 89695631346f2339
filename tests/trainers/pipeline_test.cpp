// Pipeline parallelism computes exactly what one process computes: K = 2, 3,
// 4 stage actors with every schedule and M = 1, 2, 4, 8 micro-batches give,
// float32 on the CPU, the same loss at every step and the same bits in every
// parameter as the unsplit model trained with gradient accumulation over
// the same micro-batches in the same order. Hybrid 2 x 2 gives what data
// parallelism over 2 replicas gives. Stage actors run in this process here;
// tests/integration/pipeline_itest.cpp runs them as worker processes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "actors/compute/ops.hpp"
#include "actors/nn/loss.hpp"
#include "runtime/coll/create.hpp"
#include "runtime/troupe.hpp"
#include "trainers/data_parallel.hpp"
#include "trainers/pipeline.hpp"

using namespace troupe;
using compute::Tensor;

namespace {

// 8 blocks (7 hidden layers, dropout drawn per micro-batch), small enough that
// 48 pipelines train in seconds.
train::TrainConfig small_model() {
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
Run reference(train::TrainConfig cfg, int M, int steps) {
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

pipeline::PipelineOptions in_process(int K, int M, const std::string& schedule, int v = 1) {
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
Run run_pipeline(Runtime& rt, const train::TrainConfig& cfg, pipeline::PipelineOptions o, int steps,
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

void require_same(const Run& pipe, const Run& ref) {
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

}  // namespace

TEST_CASE("every schedule with K = 2, 3, 4 and M = 1, 2, 4, 8 is bit-identical to the unsplit model", "[pipeline]") {
  if (!std::filesystem::exists(data::fashion_mnist_dir())) FAIL("no Fashion-MNIST: apt install dataset-fashion-mnist");
  Runtime rt({.threads = 4});
  const auto cfg = small_model();
  const int steps = 2;
  for (int M : {1, 2, 4, 8}) {
    const Run ref = reference(cfg, M, steps);
    for (int K : {2, 3, 4}) {
      for (const char* schedule : {"gpipe", "1f1b", "zb-h1", "interleaved"}) {
        const int v = std::string(schedule) == "interleaved" ? 2 : 1;
        INFO("K " << K << ", M " << M << ", " << schedule << ", v " << v);
        require_same(run_pipeline(rt, cfg, in_process(K, M, schedule, v), steps), ref);
      }
    }
  }
}

TEST_CASE("transfers posted in batches, as on a device group, give the same bits", "[pipeline]") {
  // A GPU pipeline posts each run of a stage's transfers as one batch, in the
  // order both ends agree on (pipeline::transfer_groups); host groups can do
  // the same, which checks that path without a GPU.
  if (!std::filesystem::exists(data::fashion_mnist_dir())) FAIL("no Fashion-MNIST: apt install dataset-fashion-mnist");
  Runtime rt({.threads = 4});
  const auto cfg = small_model();
  const int steps = 2;
  for (int M : {1, 4}) {
    const Run ref = reference(cfg, M, steps);
    for (int K : {2, 3}) {
      for (const char* schedule : {"gpipe", "1f1b", "zb-h1", "interleaved"}) {
        const int v = std::string(schedule) == "interleaved" ? 2 : 1;
        INFO("K " << K << ", M " << M << ", " << schedule << ", v " << v);
        auto o = in_process(K, M, schedule, v);
        o.batch_transfers = true;
        require_same(run_pipeline(rt, cfg, o, steps), ref);
      }
    }
  }
}

TEST_CASE("on a GPU a schedule whose transfers NCCL would pair wrongly is refused before launch", "[pipeline]") {
  Runtime rt({.threads = 2});
  auto cfg = small_model();
  cfg.device = train::DeviceChoice::cuda();  // checked, not run: the stages would go to worker processes
  auto o = in_process(2, 3, "interleaved", 2);
  o.processes = true;
  REQUIRE_THROWS_WITH(pipeline::PipelineTrainer(rt, cfg, o),
                      Catch::Contains("stage 1, action 14 (RECV_B0)") && Catch::Contains("on a GPU use gpipe"));
  // The same run on the CPU keeps tags apart and is fine.
  cfg.device = train::DeviceChoice::cpu();
  REQUIRE_NOTHROW(pipeline::PipelineTrainer(rt, cfg, o));
}

TEST_CASE("clip_norm clips by the whole model's norm, bit-identical to one process", "[pipeline]") {
  // The sum of squares passes stage to stage in model order, so it is the
  // same float one process computes; a small max_norm makes every step clip.
  if (!std::filesystem::exists(data::fashion_mnist_dir())) FAIL("no Fashion-MNIST: apt install dataset-fashion-mnist");
  Runtime rt({.threads = 4});
  auto cfg = small_model();
  cfg.clip_norm = 0.05f;
  const int steps = 3, M = 4;
  const Run ref = reference(cfg, M, steps);
  auto unclipped = cfg;
  unclipped.clip_norm = 0;
  REQUIRE(reference(unclipped, M, steps).losses.back() != ref.losses.back());  // the clipping matters
  for (int K : {2, 3}) {
    for (const char* schedule : {"1f1b", "zb-h1", "interleaved"}) {
      const int v = std::string(schedule) == "interleaved" ? 2 : 1;
      INFO("K " << K << ", " << schedule << ", v " << v);
      require_same(run_pipeline(rt, cfg, in_process(K, M, schedule, v), steps), ref);
    }
  }
}

TEST_CASE("a written schedule runs as written, and one that cannot is refused before anything starts", "[pipeline]") {
  Runtime rt({.threads = 2});
  const auto cfg = small_model();
  auto o = in_process(2, 2, pipeline::to_text(pipeline::generate(pipeline::Kind::gpipe, 2, 2)));
  require_same(run_pipeline(rt, cfg, o, 2), reference(cfg, 2, 2));
  // A receive before the matching send's forward: refused, naming the place.
  o.schedule = "stage 0: F0 SEND_F0 F1 SEND_F1 RECV_B1 B1 RECV_B0 B0 STEP\n"
               "stage 1: RECV_F0 F0 B0 SEND_B0 RECV_F1 F1 B1 SEND_B1 STEP\n";
  REQUIRE_THROWS_AS(pipeline::PipelineTrainer(rt, cfg, o), pipeline::ScheduleError);
  try {
    pipeline::PipelineTrainer t(rt, cfg, o);
  } catch (const pipeline::ScheduleError& e) {
    CHECK_THAT(e.what(), Catch::Contains("stage 0"));
  }
  // A schedule for 3 stages where the run has 2.
  o.schedule = pipeline::to_text(pipeline::generate(pipeline::Kind::one_f_one_b, 3, 2));
  REQUIRE_THROWS_WITH(pipeline::PipelineTrainer(rt, cfg, o), Catch::Contains("the written schedule has 3 stages"));
}

TEST_CASE("hybrid 2 x 2 is bit-identical to data parallelism over 2 replicas", "[pipeline]") {
  Runtime rt({.threads = 4});
  const int M = 4, steps = 2;
  for (const char* schedule : {"1f1b", "zb-h1", "clip"}) {
    INFO(schedule);
    auto cfg = small_model();
    if (std::string(schedule) == "clip") {  // clipping after the all-reduce, as the replicas do
      cfg.clip_norm = 0.05f;
      schedule = "1f1b";
    }
    auto o = in_process(2, M, schedule);
    o.replicas = 2;
    train::FitResult pr;
    const Run pipe = run_pipeline(rt, cfg, o, steps, &pr);
    // Data parallelism: 2 in-process replicas, accumulation M.
    auto dcfg = cfg;
    dcfg.accumulation = M;
    dcfg.train_limit = steps * cfg.batch * M * 2;
    dcfg.group = "dp_ref";
    dp::TrainerOptions to;
    to.replicas = 2;
    to.processes = false;
    to.chunk_steps = steps;
    to.eval_limit = 200;
    to.eval_each_epoch = false;
    auto dr = dp::DataParallelTrainer(rt, dcfg, to).fit();
    REQUIRE(pr.losses.size() == dr.losses.size());
    for (std::size_t i = 0; i < dr.losses.size(); ++i) CHECK(pr.losses[i] == dr.losses[i]);
    // The replicas' parameter hash, over the pipeline's parameters in model order.
    std::vector<std::pair<std::string, const std::vector<float>*>> ordered;
    for (auto& [name, v] : pipe.params) ordered.emplace_back(name, &v);
    std::sort(ordered.begin(), ordered.end(), [](auto& a, auto& b) {
      const auto la = std::stoi(a.first), lb = std::stoi(b.first);
      return la != lb ? la < lb : a.first.substr(a.first.find('.')) > b.first.substr(b.first.find('.'));  // weight before bias
    });
    std::uint64_t h = 1469598103934665603ull;
    for (auto& [name, v] : ordered) {
      const auto* bytes = reinterpret_cast<const unsigned char*>(v->data());
      for (std::size_t i = 0; i < v->size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
    }
    CHECK(h == dr.param_hash);
    CHECK(pr.accuracy == dr.accuracy);
  }
}

TEST_CASE("under 1F1B stage i holds at most K - i micro-batches of activations (measured)", "[pipeline]") {
  Runtime rt({.threads = 4});
  const auto cfg = small_model();
  for (int K : {2, 4}) {
    train::FitResult r;
    run_pipeline(rt, cfg, in_process(K, 8, "1f1b"), 1, &r);
    REQUIRE(r.peak_activations.size() == static_cast<std::size_t>(K));
    for (int i = 0; i < K; ++i) {
      INFO("K " << K << ", stage " << i);
      CHECK(r.peak_activations[static_cast<std::size_t>(i)] <= K - i);
      CHECK(r.peak_activations[static_cast<std::size_t>(i)] >= 1);
    }
    // GPipe keeps every micro-batch's.
    run_pipeline(rt, cfg, in_process(K, 8, "gpipe"), 1, &r);
    for (auto p : r.peak_activations) CHECK(p == 8);
  }
}

TEST_CASE("the split: explicit block ranges, balanced by parameters, and refusals naming what is wrong", "[pipeline]") {
  CHECK(pipeline::balance({1, 1, 1, 1}, 2) == std::vector<std::int64_t>{0, 2, 4});
  CHECK(pipeline::balance({8, 1, 1, 1, 1, 1, 1, 1, 1}, 2) == std::vector<std::int64_t>{0, 1, 9});
  CHECK(pipeline::balance({1, 2, 3}, 3) == std::vector<std::int64_t>{0, 1, 2, 3});
  REQUIRE_THROWS_WITH(pipeline::balance({1, 2}, 3), Catch::Contains("the model has 2 blocks"));
  Runtime rt({.threads = 2});
  auto cfg = small_model();  // 8 blocks
  auto o = in_process(2, 2, "1f1b");
  o.layers = {{0, 3}, {3, 8}};
  pipeline::PipelineTrainer t(rt, cfg, o);
  CHECK(t.stage_blocks() == std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 3}, {3, 8}});
  require_same(run_pipeline(rt, cfg, o, 2), reference(cfg, 2, 2));
  o.layers = {{0, 3}, {4, 8}};
  REQUIRE_THROWS_WITH(pipeline::PipelineTrainer(rt, cfg, o), Catch::Contains("layer range 1 is [4, 8)"));
  o.layers = {{0, 3}, {3, 9}};
  REQUIRE_THROWS_WITH(pipeline::PipelineTrainer(rt, cfg, o), Catch::Contains("ends past the model's 8 blocks"));
  o.layers = {{0, 3}, {3, 7}};
  REQUIRE_THROWS_WITH(pipeline::PipelineTrainer(rt, cfg, o), Catch::Contains("end at block 7, but the model has 8"));
  o.layers = {};
  o.stages = 9;
  REQUIRE_THROWS_WITH(pipeline::PipelineTrainer(rt, cfg, o), Catch::Contains("the model has 8 blocks"));
  // Balanced by parameters: the first block (784 x 40) outweighs the rest.
  o.stages = 2;
  pipeline::PipelineTrainer by_params(rt, cfg, o);
  CHECK(by_params.stage_blocks().front() == std::pair<std::int64_t, std::int64_t>{0, 1});
  o.split = pipeline::Split::time;
  pipeline::PipelineTrainer by_time(rt, cfg, o);
  CHECK(by_time.stage_blocks().size() == 2);
  // describe() says what each cut weighed.
  CHECK_THAT(by_params.describe(), Catch::Contains("parameters"));
  CHECK_THAT(by_time.describe(), Catch::Contains("ms measured"));
}

TEST_CASE("neighbours built from different models are refused when the pipeline forms, naming both stages",
          "[pipeline]") {
  Runtime rt({.threads = 2});
  auto stage_config = [](std::vector<std::int64_t> hidden) {
    pipeline::StageConfig c;
    c.train = small_model();
    c.train.hidden = std::move(hidden);
    c.train.accumulation = 2;
    c.stages = 2;
    c.schedule = pipeline::to_text(pipeline::generate(pipeline::Kind::one_f_one_b, 2, 2));
    const auto blocks = pipeline::model_blocks(c.train);
    c.block_bounds = {0, 1, static_cast<std::int64_t>(blocks.size())};
    c.bounds = {0, blocks[1].first, blocks.back().second};
    return c;
  };
  // Stage 0 gives 40 features; stage 1's model expects 30.
  auto a = rt.spawn<pipeline::Stage>(stage_config({40, 36}));
  auto b = rt.spawn<pipeline::Stage>(stage_config({30, 36}));
  coll::GroupOptions g;
  g.name = "pp";
  g.timeout_ms = 20000;
  coll::create_group(rt, std::vector<ActorRef<pipeline::Stage>>{a, b}, g);
  auto ra = a.call(&pipeline::Stage::setup);
  auto rb = b.call(&pipeline::Stage::setup);
  CHECK_THAT(ra.get(std::chrono::seconds(30)), Catch::Contains("stage 0: model stage 0 = blocks [0, 1)"));
  REQUIRE_THROWS_WITH(rb.get(std::chrono::seconds(30)),
                      Catch::Contains("stage 1 (model stage 1) takes 30 features of f32 from model stage 0, but "
                                      "stage 0 (model stage 0) gives 40 features of f32"));
}

namespace {

// What parts of a 3-D run make whole: by name, each (stage, tp rank) actor
// of replica 0's part put back as the unsplit model has it. A column-
// parallel layer's rows and a row-parallel layer's columns go back in tp
// order (its bias lives on tp rank 0), a whole layer is the same on every
// rank. Optimizer state ("2.weight.momentum") lies as its parameter does.
std::map<std::string, std::vector<float>> unshard(const std::vector<pipeline::NamedValues>& all_parts,
                                                  const std::vector<std::size_t>& tp_rank, std::size_t T,
                                                  const train::TrainConfig& cfg, const std::set<int>& column_layers,
                                                  const std::set<int>& row_layers) {
  std::map<std::string, std::vector<std::vector<float>>> parts;  // name -> by tp rank
  for (std::size_t i = 0; i < all_parts.size(); ++i) {
    auto& v = parts[all_parts[i].name];
    v.resize(T);
    v[tp_rank[i]] = all_parts[i].values;
  }
  std::map<std::string, std::vector<float>> out;
  for (auto& [name, by_t] : parts) {
    const int layer = std::stoi(name);
    const bool weight = name.find("weight") != std::string::npos;
    std::vector<float> whole;
    if (column_layers.count(layer)) {
      for (auto& v : by_t) whole.insert(whole.end(), v.begin(), v.end());  // rows, in order
    } else if (row_layers.count(layer) && weight) {
      // [out, in / T] per rank. Linear 2i makes hidden layer i (no norm or
      // dropout here: each hidden layer is Linear, ReLU), the last the classes.
      const std::size_t cols = by_t[0].size();
      const auto h = static_cast<std::size_t>(layer / 2);
      const std::size_t out_features = static_cast<std::size_t>(h < cfg.hidden.size() ? cfg.hidden[h] : cfg.classes);
      const std::size_t per = cols / out_features;
      whole.resize(cols * T);
      for (std::size_t t = 0; t < T; ++t)
        for (std::size_t o2 = 0; o2 < out_features; ++o2)
          for (std::size_t c = 0; c < per; ++c) whole[o2 * per * T + t * per + c] = by_t[t][o2 * per + c];
    } else {
      whole = by_t[0];  // whole on every rank (or the row-parallel bias, on rank 0)
    }
    out[name] = whole;
  }
  return out;
}

struct Whole {
  std::map<std::string, std::vector<float>> params, state;
};

// Replica 0's parameters and optimizer state, put back whole.
Whole gather(Mesh<pipeline::Stage>& stages, std::size_t K, std::size_t T, const train::TrainConfig& cfg,
             const std::set<int>& column_layers, const std::set<int>& row_layers) {
  std::vector<pipeline::NamedValues> params, state;
  std::vector<std::size_t> prank, srank;
  for (std::size_t a = 0; a < K * T; ++a) {
    for (auto& p : stages[a].call(&pipeline::Stage::parameters).get(std::chrono::seconds(60))) {
      params.push_back(p);
      prank.push_back(a % T);
    }
    for (auto& p : stages[a].call(&pipeline::Stage::optimizer_state).get(std::chrono::seconds(60))) {
      state.push_back(p);
      srank.push_back(a % T);
    }
  }
  return {unshard(params, prank, T, cfg, column_layers, row_layers), unshard(state, srank, T, cfg, column_layers, row_layers)};
}

Run run_3d(Runtime& rt, const train::TrainConfig& cfg, pipeline::PipelineOptions o, int steps,
           const std::set<int>& column_layers, const std::set<int>& row_layers, Whole* at_end = nullptr) {
  o.chunk_steps = steps;
  const auto K = static_cast<std::size_t>(o.stages), T = static_cast<std::size_t>(o.tensor_parallel);
  Run out;
  o.after_chunk = [&](std::int64_t, Mesh<pipeline::Stage>& stages) {
    auto w = gather(stages, K, T, cfg, column_layers, row_layers);
    out.params = w.params;
    if (at_end) *at_end = std::move(w);
  };
  train::TrainConfig c = cfg;
  c.train_limit = steps * cfg.batch * o.microbatches * o.replicas;
  auto r = pipeline::PipelineTrainer(rt, c, o).fit();
  out.losses = r.losses;
  return out;
}

}  // namespace

TEST_CASE("3-D: dp x pp x tp = 2 x 2 x 2 follows the 2 x 2 x 1 run within the tensor-parallel bound", "[pipeline][tp]") {
  // tp = 1 is part 1's hybrid run, which is bit-identical to data parallelism
  // (the case above): the split blocks change nothing there. With tp = 2 the
  // row-parallel sums group their terms differently. One pass of this model
  // is within gamma_k ~ k * 2^-24 (k <= 41 terms: ~2.5e-6) relative of the
  // exact values per layer (tests/actors/tensor_parallel_test.cpp derives it
  // per element); through 8 layers, two passes, the update and 3 steps that
  // compound it, 1e-4 relative (with 1e-6 absolute for values near 0) is ~40x
  // that, and a wrong sum (a bias added twice, a shard in the wrong place)
  // is off by 1e-2 or more. (Measured: 7.5e-9 at most.)
  Runtime rt({.threads = 4});
  const int M = 2, steps = 3;
  auto cfg = small_model();
  cfg.dropout = 0;  // a split layer has no dropout (its mask would need the whole width)
  cfg.tp_blocks = {0, 2};  // hidden layers 0 (40) and 2 (32) split: Linears 0 and 4 column-, 2 and 6 row-parallel
  auto o = in_process(2, M, "1f1b");
  o.replicas = 2;
  auto plain = cfg;
  plain.tp_blocks.clear();
  const Run base = run_pipeline(rt, plain, o, steps);
  const Run same = run_pipeline(rt, cfg, o, steps);  // tp = 1: the split blocks are whole
  require_same(same, base);
  o.tensor_parallel = 2;
  const Run three = run_3d(rt, cfg, o, steps, {0, 4}, {2, 6});
  REQUIRE(three.losses.size() == base.losses.size());
  for (std::size_t i = 0; i < base.losses.size(); ++i) {
    INFO("step " << i + 1);
    CHECK(std::abs(three.losses[i] - base.losses[i]) <= 1e-4f * std::abs(base.losses[i]));
  }
  REQUIRE(three.params.size() == base.params.size());
  for (auto& [name, values] : base.params) {
    INFO("parameter " << name);
    auto it = three.params.find(name);
    REQUIRE(it != three.params.end());
    REQUIRE(it->second.size() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      REQUIRE(std::abs(it->second[i] - values[i]) <= 1e-4f * std::abs(values[i]) + 1e-6f);
  }
}

TEST_CASE("3-D layouts that cannot work are refused before anything starts, naming the key", "[pipeline][tp]") {
  Runtime rt({.threads = 2});
  auto cfg = small_model();
  cfg.dropout = 0;
  auto o = in_process(2, 2, "1f1b");
  o.tensor_parallel = 2;
  auto key_of = [&](const train::TrainConfig& c, const pipeline::PipelineOptions& p) -> std::string {
    try {
      pipeline::PipelineTrainer(rt, c, p);
    } catch (const pipeline::OptionError& e) {
      return e.key() + ": " + e.what();
    }
    return "accepted";
  };
  CHECK_THAT(key_of(cfg, o), Catch::StartsWith("model.tp_blocks") && Catch::Contains("no hidden layer is split"));
  cfg.tp_blocks = {1};  // width 36
  o.tensor_parallel = 8;
  CHECK_THAT(key_of(cfg, o), Catch::StartsWith("model.tp_blocks") && Catch::Contains("tp = 8 does not divide hidden layer 1 (width 36)"));
  o.tensor_parallel = 2;
  o.layers = {{0, 2}, {2, 8}};  // a stage starting at block 2 would cut hidden layer 1's block in two
  CHECK_THAT(key_of(cfg, o), Catch::StartsWith("pipeline.layers") && Catch::Contains("starts at block 2"));
  o.layers = {{0, 3}, {3, 8}};
  CHECK(key_of(cfg, o) == "accepted");
}

TEST_CASE("a 2 x 2 x 2 checkpoint resumes as 1 x 1 x 1 and 1 x 4 x 1, every parameter and optimizer value "
          "resharded bit for bit",
          "[pipeline][tp]") {
  Runtime rt({.threads = 4});
  const int M = 2, steps = 3;
  auto cfg = small_model();
  cfg.dropout = 0;
  cfg.tp_blocks = {0, 2};
  const auto dir = (std::filesystem::temp_directory_path() / fmt::format("troupe-reshard-{}", ::getpid())).string();
  std::filesystem::remove_all(dir);
  auto o = in_process(2, M, "1f1b");
  o.replicas = 2;
  o.tensor_parallel = 2;
  o.checkpoint_dir = dir;
  Whole saved;
  run_3d(rt, cfg, o, steps, {0, 4}, {2, 6}, &saved);
  REQUIRE(!saved.state.empty());  // SGD momentum buffers
  const std::int64_t train_limit = steps * cfg.batch * M * 2;  // as the 3-D run had
  for (auto [stages, tp] : {std::pair{1, 1}, std::pair{4, 1}, std::pair{2, 2}}) {
    DYNAMIC_SECTION("loaded as 1 x " << stages << " x " << tp) {
      auto l = in_process(stages, M, "1f1b");
      l.replicas = 1;
      l.tensor_parallel = tp;
      l.checkpoint_dir = dir;
      Whole loaded;
      std::int64_t at = -1;
      l.on_resume = [&](std::int64_t step, Mesh<pipeline::Stage>& mesh) {
        at = step;
        loaded = gather(mesh, static_cast<std::size_t>(stages), static_cast<std::size_t>(tp), cfg,
                        tp > 1 ? std::set<int>{0, 4} : std::set<int>{}, tp > 1 ? std::set<int>{2, 6} : std::set<int>{});
      };
      auto c = cfg;
      c.train_limit = train_limit;
      c.epochs = 2;
      const auto r = pipeline::PipelineTrainer(rt, c, l).fit();
      // One replica now: a step takes half the examples, so the 3 steps
      // saved are 6 here (the same examples seen), the end of epoch 1.
      CHECK(at == 2 * steps);
      CHECK(r.resumed_from == 2 * steps);
      CHECK(loaded.params == saved.params);
      CHECK(loaded.state == saved.state);
      REQUIRE(r.warnings.size() == 1);
      CHECK_THAT(r.warnings[0], Catch::Contains("saved as dp 2 x pp 2 x tp 2") &&
                                    Catch::Contains("its step 3 of 32 examples is step 6 here (16 examples per step)"));
      // And it trains on in its layout, through the second epoch.
      CHECK(r.steps == 4 * steps);
      for (float loss : r.losses) CHECK(std::isfinite(loss));
    }
  }
  // A layout that cannot hold the model is refused before loading, naming the layer.
  auto bad = in_process(1, M, "1f1b");
  bad.tensor_parallel = 3;
  bad.checkpoint_dir = dir;
  auto c = cfg;
  c.train_limit = train_limit;
  CHECK_THROWS_WITH(pipeline::PipelineTrainer(rt, c, bad), Catch::Contains("tp = 3 does not divide hidden layer 0 (width 40)"));
  std::filesystem::remove_all(dir);
}
