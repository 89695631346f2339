// Data parallelism end to end: replicas in worker processes, gradients
// all-reduced in buckets through shared memory, against single-process
// training with the same global batch.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "trainers/data_parallel.hpp"

using namespace troupe;

namespace {

dp::ReplicaConfig small(int replicas, int accumulation) {
  dp::ReplicaConfig c;
  c.hidden = {64};
  c.train_limit = 2048;
  c.batch = 64 / replicas / accumulation;  // global batch 64 in every run
  c.accumulation = accumulation;
  c.epochs = 1;
  c.lr = 0.05f;
  c.momentum = 0.9f;
  c.first_bucket_bytes = 4096;  // several buckets even for this small model
  c.bucket_bytes = 64 << 10;
  return c;
}

std::vector<float> run(int replicas, int accumulation, bool processes) {
  Runtime rt({.threads = 2});
  dp::TrainerOptions o;
  o.replicas = replicas;
  o.processes = processes;
  o.chunk_steps = 8;
  o.eval_limit = 1000;
  dp::DataParallelTrainer t(rt, small(replicas, accumulation), o);
  std::int64_t reports = 0;
  auto r = t.fit([&](const dp::Progress& p) {
    ++reports;
    CHECK(p.total_steps == 32);
  });
  CHECK(r.steps == 32);
  CHECK(reports == 4);
  CHECK(r.accuracy > 0.5);  // 32 steps of 64 examples learn something
  return r.losses;
}

}  // namespace

TEST_CASE("1, 2 and 4 replicas follow single-process training with the same global batch", "[dp][process]") {
  const auto single = run(1, 1, false);
  REQUIRE(single.size() == 32);
  CHECK(single.back() < single.front());
  struct Case {
    int replicas, accumulation;
    bool processes;
  };
  for (auto c : {Case{2, 1, true}, Case{4, 1, true}, Case{2, 2, true}, Case{2, 1, false}}) {
    INFO(c.replicas << " replicas, accumulation " << c.accumulation << (c.processes ? ", processes" : ", in-process"));
    const auto losses = run(c.replicas, c.accumulation, c.processes);
    REQUIRE(losses.size() == single.size());
    for (std::size_t s = 0; s < single.size(); ++s) {
      INFO("step " << s);
      CHECK(losses[s] == Approx(single[s]).epsilon(2e-3));
    }
  }
}

namespace {

dp::TrainerOptions with_checkpoints(const std::string& dir) {
  dp::TrainerOptions o;
  o.replicas = 2;
  o.chunk_steps = 4;
  o.eval_limit = 1000;
  o.checkpoint_dir = dir;
  o.checkpoint_every = 8;
  return o;
}

std::string fresh_dir(const char* what) {
  auto d = std::filesystem::temp_directory_path() / fmt::format("troupe-dp-{}-{}", what, ::getpid());
  std::filesystem::remove_all(d);
  return d.string();
}

}  // namespace

TEST_CASE("a replica killed with -9 mid-run: the group is rebuilt from the checkpoint and the run ends as an "
          "uninterrupted one", "[dp][process]") {
  auto cfg = small(2, 1);
  cfg.epochs = 2;  // 64 steps
  Runtime rt({.threads = 2});
  const auto clean_dir = fresh_dir("clean");
  dp::DataParallelTrainer clean(rt, cfg, with_checkpoints(clean_dir));
  const auto want = clean.fit();
  REQUIRE(want.steps == 64);
  CHECK(want.recoveries == 0);

  const auto dir = fresh_dir("killed");
  auto o = with_checkpoints(dir);
  bool killed = false;
  o.after_chunk = [&](std::int64_t step, Mesh<dp::Replica>& mesh) {
    if (step == 20 && !killed) {  // past the checkpoint at step 16: steps 17-20 are redone
      killed = true;
      ::kill(mesh[1].call(&dp::Replica::pid).get(std::chrono::seconds(10)), SIGKILL);
    }
  };
  std::vector<dp::Progress> seen;
  dp::DataParallelTrainer t(rt, cfg, o);
  const auto got = t.fit([&](const dp::Progress& p) { seen.push_back(p); });
  CHECK(killed);
  CHECK(got.recoveries == 1);
  CHECK(got.steps == 64);
  // The same data order, seeds and state from the checkpoint: bit for bit the same model.
  CHECK(got.param_hash == want.param_hash);
  CHECK(got.accuracy == want.accuracy);
  CHECK(seen.back().recoveries == 1);
  std::filesystem::remove_all(clean_dir);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a stopped run resumes from its checkpoint directory and ends as an uninterrupted one", "[dp][process]") {
  auto cfg = small(2, 1);
  cfg.epochs = 2;
  Runtime rt({.threads = 2});
  const auto dir = fresh_dir("resume");
  std::uint64_t want = 0;
  {
    auto o = with_checkpoints(fresh_dir("resume-clean"));
    want = dp::DataParallelTrainer(rt, cfg, o).fit().param_hash;
    std::filesystem::remove_all(o.checkpoint_dir);
  }
  auto o = with_checkpoints(dir);
  o.after_chunk = [](std::int64_t step, Mesh<dp::Replica>&) {
    if (step == 44) throw Error("stopped by the test");  // the last checkpoint is step 40
  };
  CHECK_THROWS_WITH(dp::DataParallelTrainer(rt, cfg, o).fit(), Catch::Contains("stopped by the test"));
  o.after_chunk = nullptr;
  auto r = dp::DataParallelTrainer(rt, cfg, o).fit();
  CHECK(r.resumed_from == 40);
  CHECK(r.steps == 64);
  CHECK(r.losses.size() == 24);
  CHECK(r.param_hash == want);
  // A checkpoint from another configuration is refused, naming what differs.
  auto other = cfg;
  other.batch = 16;
  o.replicas = 2;
  CHECK_THROWS_WITH(dp::DataParallelTrainer(rt, other, o).fit(), Catch::Contains("batch = 32") && Catch::Contains("batch = 16"));
  std::filesystem::remove_all(dir);
}
