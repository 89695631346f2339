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
#include "tests/trainers/pipeline_support.hpp"

using namespace troupe;
using compute::Tensor;
using namespace troupe::test;


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
