// troupe-bench pipeline: pipeline-parallel training of a deep MLP
// (784 - 7 x 1024 - 512 - 10) on Fashion-MNIST, micro-batches of 32, with each
// schedule, its stages in worker processes (one compute thread each), next
// to the unsplit model trained in one process with one thread on the same
// micro-batches (the stages = 1 row). bubble_measured is 1 - (time the
// stages spent computing) / (stages x step time), over the steps after a
// warm-up; bubble_theory the schedule's simulated bubble (F = I = W = 1,
// B = 2). Rows with more stages than this machine has cores are marked
// oversubscribed. An "empty stages" row runs the 1F1B schedule on a model of
// 1-wide layers: its time per action is the scheduling cost.
#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "actors/compute/ops.hpp"
#include "actors/nn/loss.hpp"
#include "tools/bench/report.hpp"
#include "trainers/pipeline.hpp"

namespace troupe::bench {

namespace {

// depth hidden layers of `width`, the last of them half as wide. That last
// layer makes the two stages of a 2-stage split cost the same: the first
// stage's first layer is narrower (784 inputs) and needs no input gradient,
// so with all layers equal no cut at a layer boundary would balance (the
// slower stage's lead showed as 3-6 points of extra bubble), and the bubble
// measured here is the schedule's, not the split's.
train::TrainConfig model(std::int64_t width, int depth, std::int64_t batch) {
  train::TrainConfig c;
  c.hidden.assign(static_cast<std::size_t>(depth), width);
  if (depth > 1) c.hidden.back() = std::max<std::int64_t>(1, width / 2);
  c.batch = batch;
  c.epochs = 1;
  c.optimizer = optim::Algorithm::sgd;
  c.lr = 0.01f;
  c.momentum = 0.9f;
  c.threads = 1;
  return c;
}

struct Measured {
  double samples_per_s = 0, bubble = -1, us_per_action = 0;
  double bubble_sim = -1;  // the schedule simulated with the measured F, B, I, W and STEP times
  std::int64_t peak = 0;
};

// The schedule's bubble with the op times the stages measured (mean over
// stages and steps), transfers free, STEP at the end of every stage's step:
// what the bubble would be with no runtime overhead on this machine.
double simulated_bubble(const pipeline::Schedule& sched, const std::vector<pipeline::StageSpan>& spans, std::int64_t from_step) {
  std::map<std::string, std::pair<double, int>> sum;
  for (auto& s : spans)
    if (s.step >= from_step) {
      auto& [t, n] = sum[s.what];
      t += s.end_us - s.start_us;
      ++n;
    }
  auto mean = [&](const char* what, double otherwise) {
    auto it = sum.find(what);
    return it == sum.end() || it->second.second == 0 ? otherwise : it->second.first / it->second.second;
  };
  const double f = mean("F", 0);
  if (f <= 0) return -1;
  pipeline::Costs c{f, mean("B", 2 * f), mean("I", f), mean("W", f)};
  const auto rep = pipeline::check(sched, c);
  const double step = mean("STEP", 0), K = static_cast<double>(sched.stages);
  const double busy = (1 - rep.bubble) * K * rep.makespan;
  return 1 - (busy + K * step) / (K * (rep.makespan + step));
}

// The unsplit model, one process, one thread, gradient accumulation over M.
Measured unsplit(train::TrainConfig cfg, int M, int warmup, int steps) {
  cfg.accumulation = M;
  cfg.train_limit = static_cast<std::int64_t>(warmup + steps) * cfg.batch * M;
  compute::set_num_threads(1);
  auto data = train::load_train(cfg);
  nn::Model net = train::make_model(cfg);
  auto opt = train::make_optimizer(cfg);
  train::DataStream stream(data, cfg, 1, 0);
  nn::Tape tape;
  nn::CrossEntropy ce;
  Measured m;
  auto t0 = Clock::now();
  for (int step = 0; step < warmup + steps; ++step) {
    if (step == warmup) t0 = Clock::now();
    net.zero_grad();
    for (int mb = 0; mb < M; ++mb) {
      compute::Tensor x, y;
      stream.next(x, y);
      compute::Tensor d = ce.forward_backward(net.forward(x, tape, {true, 0}), y);
      if (M > 1) compute::scale_(d, 1.0f / static_cast<float>(M));
      net.backward(d, tape);
    }
    opt->step(net.params());
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  m.samples_per_s = static_cast<double>(steps) * static_cast<double>(M * cfg.batch) / s;
  m.peak = M;
  return m;
}

Measured piped(train::TrainConfig cfg, int K, int M, int v, const std::string& schedule, int warmup, int steps,
               double* theory) {
  cfg.train_limit = static_cast<std::int64_t>(warmup + steps) * cfg.batch * M;
  Runtime rt;
  pipeline::PipelineOptions o;
  o.stages = K;
  o.microbatches = M;
  o.virtual_stages = v;
  o.schedule = schedule;
  o.processes = true;
  o.split = pipeline::Split::time;  // balance the stages' measured time
  o.chunk_steps = warmup;  // the first report ends the warm-up
  o.eval_limit = 100;
  o.eval_each_epoch = false;
  double t_warm = 0, samples_warm = 0, t_end = 0, samples_end = 0, bubble_sum = 0;
  int chunks = 0;
  std::vector<pipeline::StageSpan> spans;
  o.after_chunk = [&](std::int64_t, Mesh<pipeline::Stage>& stages) {
    for (auto& m : stages.members())
      for (auto& s : m.call(&pipeline::Stage::timeline).get(std::chrono::seconds(60))) spans.push_back(s);
  };
  pipeline::PipelineTrainer t(rt, cfg, o);
  *theory = t.bubble_theory();
  auto r = t.fit([&](const train::Progress& p) {
    const double samples = p.samples_per_s * p.elapsed_s;
    if (p.step == warmup) {
      t_warm = p.elapsed_s, samples_warm = samples;
      return;
    }
    t_end = p.elapsed_s, samples_end = samples;
    bubble_sum += p.bubble;
    ++chunks;
  });
  Measured m;
  m.samples_per_s = t_end > t_warm ? (samples_end - samples_warm) / (t_end - t_warm) : 0;
  m.bubble = chunks ? bubble_sum / chunks : -1;
  m.bubble_sim = simulated_bubble(t.schedule(), spans, warmup);
  for (auto p : r.peak_activations) m.peak = std::max(m.peak, p);
  // Per action of a stage's list, over the measured steps.
  const auto actions = pipeline::generate(pipeline::parse_kind(schedule), K, M, v).actions.at(0).size();
  const double step_s = m.samples_per_s > 0 ? static_cast<double>(M * cfg.batch) / m.samples_per_s : 0;
  m.us_per_action = step_s * 1e6 / static_cast<double>(actions);
  return m;
}

Row row(const std::string& schedule, int K, int M, int v, const Measured& m, double theory, bool over) {
  Row r;
  r.set("schedule", schedule)
      .set("stages", static_cast<std::int64_t>(K))
      .set("microbatches", static_cast<std::int64_t>(M))
      .set("virtual", static_cast<std::int64_t>(v))
      .set("bubble_measured", m.bubble)
      .set("bubble_theory", theory)
      .set("bubble_sim", m.bubble_sim)
      .set("samples_per_s", m.samples_per_s)
      .set("peak_activations", m.peak)
      .set("us_per_action", m.us_per_action)
      .set("oversubscribed", std::string(over ? "yes" : "no"));
  return r;
}

}  // namespace

std::vector<Row> pipeline_rows(const PipelineConfig& cfg, std::vector<std::string>& notes) {
  std::vector<Row> rows;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto net = model(1024, 8, 32);
  const int warmup = 4, steps = cfg.steps;
  for (int M : cfg.microbatches) {
    rows.push_back(row("unsplit", 1, M, 1, unsplit(net, M, warmup, steps), 0, false));
    for (int K : cfg.stages) {
      for (const char* s : {"gpipe", "1f1b", "zb-h1", "interleaved"}) {
        const int v = std::string(s) == "interleaved" ? 2 : 1;
        double theory = 0;
        const auto m = piped(net, K, M, v, s, warmup, steps, &theory);
        rows.push_back(row(s, K, M, v, m, theory, K > cores));
      }
    }
  }
  // Scheduling cost: stages whose compute is next to nothing.
  {
    double theory = 0;
    const auto m = piped(model(1, 8, 1), 2, 8, 1, "1f1b", 20, 200, &theory);
    rows.push_back(row("1f1b-empty", 2, 8, 1, m, theory, 2 > cores));
  }
  notes.push_back(fmt::format(
      "MLP 784-7x1024-512-10, micro-batches of 32, SGD; stages in worker processes with one compute thread each; {} "
      "measured steps after {} warm-up steps; this machine: {} cores",
      steps, warmup, cores));
  notes.push_back("unsplit: the whole model in one process, one thread, accumulating over the same micro-batches");
  notes.push_back("bubble_theory: the schedule simulated with F = I = W = 1, B = 2; bubble_sim: simulated with the F, B, "
                  "I, W and STEP times the stages measured and free transfers (the cost model's share); measured minus "
                  "sim is the runtime's share (transfers, wake-ups, other threads)");
  notes.push_back("us_per_action: a stage's step time over its instruction count (the 1f1b-empty row: 1-wide layers, "
                  "batch 1, so this is the cost of running the schedule)");
  return rows;
}

}  // namespace troupe::bench
