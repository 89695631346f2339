// Data parallelism end to end: replicas in worker processes, gradients
// all-reduced in buckets through shared memory, against single-process
// training with the same global batch.
#include <catch2/catch.hpp>

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
