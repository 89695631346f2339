#include "trainers/run_loop.hpp"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/coll/types.hpp"
#include "runtime/device.hpp"
#include "runtime/errors.hpp"
#include "trainers/detail/mesh_calls.hpp"

namespace troupe::train {

std::pair<std::string, std::string> detail::describe_request(const Options& o) {
  std::string each;
  bool gpus = false;
  for (const auto& [k, v] : o.resources_) {
    each += fmt::format("{}{}={}", each.empty() ? "" : ", ", k, v);
    gpus = gpus || (k == "GPU" && v > 0);
  }
  // No GPU anywhere is often this machine's CUDA not loading: say why.
  std::string here;
  if (gpus && devices().gpus.empty()) here = fmt::format(" (this machine: {})", devices().status);
  return {each.empty() ? "nothing" : each, here};
}

namespace fs = std::filesystem;

namespace {

// The error that ends a run whose failure budget is spent: every failure, the
// last cause, how far it got and what is saved.
std::string budget_spent(const std::string& what, const std::vector<std::string>& failures, int budget,
                         std::int64_t reached, std::int64_t total, std::int64_t saved, const std::string& ckpt) {
  return fmt::format(
      "{}: training stopped after {} failures, {} more than max_failures = {} ([checkpoint] max_failures; "
      "-1: no limit). Last cause: {}. Reached step {} of {}; the last checkpoint ({}) holds step {}. Failures: {}",
      what, failures.size(), failures.size() - static_cast<std::size_t>(budget), budget,
      failures.back().substr(failures.back().find(": ") + 2), reached, total, ckpt, saved, fmt::join(failures, "; "));
}

}  // namespace

FitResult run(Job& job, const LoopOptions& o, const std::function<void(const Progress&)>& on_progress) {
  using namespace std::chrono;
  if (o.chunk_steps < 1) throw UsageError(fmt::format("{}: chunk_steps must be at least 1", o.what));
  job.form();
  const std::int64_t per_epoch = job.steps_per_epoch();
  if (per_epoch == 0) throw UsageError(fmt::format("{}: the training set does not fill one step: no step would run", o.what));
  const std::int64_t total = per_epoch * o.epochs;
  if (o.warmup_steps > 0 && o.warmup_steps >= total && total > 0)
    fmt::print(stderr,
               "troupe: warning: warmup_steps = {} ([schedule] warmup_steps) but the run has {} steps: the learning "
               "rate never gets past its warm-up ({:.3g} of {:.3g} at the end)\n",
               o.warmup_steps, total,
               static_cast<double>(o.lr) * static_cast<double>(total) / static_cast<double>(o.warmup_steps), o.lr);
  const std::string& ckpt = o.checkpoint;
  FitResult r;
  std::int64_t step = 0, last_ckpt = -1, reached = 0;
  std::vector<std::string> failures;  // "step N: cause", in order
  auto save = [&]() {
    fs::create_directories(fs::path(ckpt).parent_path());
    job.save(ckpt, step);
    last_ckpt = step;
    r.checkpoint = ckpt;
  };
  if (!ckpt.empty()) {
    if (o.resume && fs::exists(ckpt)) {
      step = job.load(ckpt);
      r.resumed_from = step;
      last_ckpt = step;
    } else {
      save();  // step 0: a failure before the first interval restarts from here
    }
  }
  const std::int64_t first_step = step;
  std::vector<std::pair<std::int64_t, float>> losses;  // (step, loss)
  Progress last_eval;
  bool eval_at_end = false;
  const auto start = steady_clock::now();
  std::int64_t samples = 0;
  double busy = 0, capacity = 0;  // pipelines: compute time, and stages x step time, over the run
  while (step < total) {
    const std::int64_t epoch_end = (step / per_epoch + 1) * per_epoch;
    const std::int64_t n = std::min({o.chunk_steps, total - step, epoch_end - step});
    // A worker that fails (dies, or its group fails) while the chunk trains,
    // or dies while the chunk's parameters are checked, evaluated or saved:
    // bring every worker back to the last checkpoint in new groups, and go
    // on from there.
    auto recover = [&](const std::exception& e) {
      failures.push_back(fmt::format("step {}: {}", step, e.what()));
      if (ckpt.empty())
        throw Error(fmt::format("{}: training failed at step {} of {}: {} (no checkpoint directory: nothing "
                                "to recover from; set one to survive failures)",
                                o.what, step, total, e.what()));
      if (o.max_failures >= 0 && r.recoveries >= o.max_failures)
        throw Error(budget_spent(o.what, failures, o.max_failures, reached, total, last_ckpt, ckpt));
      ++r.recoveries;
      job.wait_alive(seconds(120));
      job.form();
      step = job.load(ckpt);
      std::erase_if(losses, [&](auto& l) { return l.first > step; });
    };
    std::vector<StepStats> chunk;
    try {
      chunk = job.train(n);
    } catch (const std::exception& e) {
      recover(e);
      continue;
    }
    Progress p;
    const std::int64_t before = step;
    try {
      step = before + n;
      reached = std::max(reached, step);
      r.param_hash = job.check_params(step);
      const bool epoch_done = step % per_epoch == 0;
      if (epoch_done && o.eval_each_epoch) {
        auto e = job.evaluate(o.eval_limit);
        p.evaluated = true;
        p.test_accuracy = e.total ? static_cast<double>(e.correct) / static_cast<double>(e.total) : 0;
        p.test_loss = e.loss;
        eval_at_end = step == total;
        last_eval = p;
      }
      if (!ckpt.empty() &&
          (epoch_done || step == total || (o.checkpoint_every > 0 && step - last_ckpt >= o.checkpoint_every)))
        save();
    } catch (const ActorDied& e) {
      step = before;
      recover(e);
      continue;
    } catch (const coll::CollectiveError& e) {
      step = before;
      recover(e);
      continue;
    }
    for (std::int64_t k = 0; k < n; ++k) {
      const auto& s = chunk.at(static_cast<std::size_t>(k));
      losses.emplace_back(before + k + 1, s.loss);
      samples += s.samples;
    }
    p.bubble = job.bubble(chunk);
    for (const auto& s : chunk) {
      busy += s.busy_s;
      capacity += s.wall_s;
    }
    job.after_chunk(step);
    if (on_progress) {
      const auto& last = chunk.back();
      p.step = step;
      p.total_steps = total;
      p.epoch = last.epoch;
      p.loss = losses.back().second;
      p.lr = last.lr;
      p.elapsed_s = duration<double>(steady_clock::now() - start).count();
      p.samples_per_s = p.elapsed_s > 0 ? static_cast<double>(samples) / p.elapsed_s : 0;
      p.recoveries = r.recoveries;
      p.first_step = first_step;
      on_progress(p);
    }
  }
  r.steps = step;
  for (auto& [s, l] : losses) r.losses.push_back(l);
  r.seconds = duration<double>(steady_clock::now() - start).count();
  r.samples_per_s = r.seconds > 0 ? static_cast<double>(samples) / r.seconds : 0;
  if (capacity > 0) r.bubble = std::max(0.0, 1.0 - busy / capacity);
  if (eval_at_end) {
    r.accuracy = last_eval.test_accuracy;
    r.test_loss = last_eval.test_loss;
  } else {
    auto e = job.evaluate(o.eval_limit);
    r.accuracy = e.total ? static_cast<double>(e.correct) / static_cast<double>(e.total) : 0;
    r.test_loss = e.loss;
  }
  if (r.param_hash == 0) r.param_hash = job.check_params(step);
  return r;
}

}  // namespace troupe::train
