// 3-D runs (dp x pp x tp) against the hybrid run, their refusals, and
// checkpoints resharded into other layouts. Stage actors run in this
// process; tests/integration/pipeline_itest.cpp runs them as workers.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <fmt/format.h>

#include "runtime/troupe.hpp"
#include "tests/trainers/pipeline_support.hpp"
#include "trainers/pipeline.hpp"

using namespace troupe;
using namespace troupe::test;

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
