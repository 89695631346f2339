#include "trainers/run_loop.hpp"

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/coll/types.hpp"
#include "runtime/device.hpp"
#include "runtime/errors.hpp"
#include "runtime/runtime.hpp"
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

// The job's row at the cluster head (`troupe jobs`), refreshed after every
// chunk; "finished" or "failed" (with why) at the end.
//
// While a chunk trains, a thread of its own scores the ranks live: every
// window in which each rank noted two steps (troupe::note_step) and at least
// kWindow passed, it sends the row again with the step reached and each
// rank's compute and wait per step over the window. The head names a rank
// that is slower than its peers in two reports of three: a few steps after
// it slows down, whatever the chunk's length.
class Reporter {
 public:
  explicit Reporter(const LoopOptions& o) : rt_(o.runtime) {
    if (!rt_) return;
    s_.id = rt_->next_job_id();
    s_.name = o.name.empty() ? o.what : o.name;
    s_.strategy = o.what;
  }
  ~Reporter() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (live_.joinable()) live_.join();
  }
  void send() {
    if (rt_) rt_->report_job(s_);
  }
  /// While a chunk trains: its ranks are watched (live reports) until the
  /// returned guard goes, whether the chunk ends or fails.
  [[nodiscard]] auto watching(Job& job) {
    if (rt_) {
      auto ranks = job.live_ranks();
      std::lock_guard lock(mu_);
      ranks_ = std::move(ranks);
      base_.clear();
      for (auto& r : ranks_) base_.push_back(r.progress());
      window_ = std::chrono::steady_clock::now();
      if (!ranks_.empty() && !live_.joinable()) live_ = std::thread([this] { watch(); });
    }
    struct Done {
      Reporter* r;
      ~Done() {
        std::lock_guard lock(r->mu_);
        r->ranks_.clear();  // no live report after this
      }
    };
    return Done{this};
  }
  /// After a chunk: what the run loop reports (p), the chunk's seconds per
  /// step (its steps only), and each rank's timings from the job.
  void chunk(const Progress& p, double step_s, Job& job) {
    if (!rt_) return;
    s_.step = p.step;
    s_.total_steps = p.total_steps;
    s_.epoch = p.epoch;
    s_.loss = p.loss;
    s_.elapsed_s = p.elapsed_s;
    s_.samples_per_s = p.samples_per_s;
    s_.eta_s = p.step > p.first_step ? p.elapsed_s / static_cast<double>(p.step - p.first_step) *
                                           static_cast<double>(p.total_steps - p.step)
                                     : 0;
    s_.step_s = step_s;
    s_.recoveries = static_cast<std::uint32_t>(p.recoveries);
    if (p.evaluated) s_.test_accuracy = p.test_accuracy;
    s_.ranks.clear();
    s_.split = {};
    job.timings(s_.ranks, s_.split);
    send();
  }
  void finish(const FitResult& r) {
    s_.test_accuracy = r.accuracy;
    s_.step = r.steps;  // a resumed run with nothing left to train ends where it started
    s_.total_steps = std::max(s_.total_steps, r.steps);
    if (!r.losses.empty()) s_.loss = r.losses.back();
    end("finished", "");
  }
  void end(const std::string& state, const std::string& detail) {
    s_.state = state;
    s_.detail = detail;
    s_.eta_s = 0;
    send();
  }

 private:
  // At most one live report per window; a job of many ranks less often
  // (each report carries every rank).
  static constexpr auto kWindow = std::chrono::milliseconds(100);
  static constexpr auto kPoll = std::chrono::milliseconds(25);
  static constexpr std::uint64_t kWindowSteps = 2;  // each rank's, at least: one step is too noisy

  void watch() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      cv_.wait_for(lock, kPoll);
      if (stop_ || ranks_.empty()) continue;
      const auto now = std::chrono::steady_clock::now();
      const auto window = ranks_.size() > 256 ? kWindow * 10 : kWindow;
      if (now - window_ < window) continue;
      std::vector<telemetry::StepProgress> now_at;
      bool ready = true;
      for (std::size_t i = 0; i < ranks_.size(); ++i) {
        now_at.push_back(ranks_[i].progress());
        if (now_at[i].steps < base_[i].steps) {  // restarted: its counters began again
          base_[i] = now_at[i];
          ready = false;
        } else if (now_at[i].steps < base_[i].steps + kWindowSteps) {
          ready = false;  // too few steps yet: the window stays open
        }
      }
      if (!ready) continue;
      telemetry::JobStatus live = s_;
      live.ranks.clear();
      std::int64_t reached = INT64_MAX;
      for (std::size_t i = 0; i < ranks_.size(); ++i) {
        const double n = static_cast<double>(now_at[i].steps - base_[i].steps);
        auto who = ranks_[i].who;
        who.compute_s = std::max(0.0, now_at[i].compute_s - base_[i].compute_s) / n;
        who.wait_s = std::max(0.0, now_at[i].wait_s - base_[i].wait_s) / n;
        live.ranks.push_back(std::move(who));
        reached = std::min(reached, now_at[i].step);
      }
      live.step = std::max(live.step, reached);
      base_ = std::move(now_at);
      window_ = now;
      lock.unlock();  // encoding and sending it need not hold up the chunk's start or end
      rt_->report_job(live);
      lock.lock();
    }
  }

  Runtime* rt_;
  telemetry::JobStatus s_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread live_;
  bool stop_ = false;
  std::vector<LiveRank> ranks_;  // watched while a chunk trains (empty: none)
  std::vector<telemetry::StepProgress> base_;  // each rank's counters at the window's start
  std::chrono::steady_clock::time_point window_;
};

FitResult run_chunks(Job& job, const LoopOptions& o, const std::function<void(const Progress&)>& on_progress,
                     Reporter& report) {
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
    const auto chunk_start = steady_clock::now();
    steady_clock::time_point chunk_end;
    try {
      auto live = report.watching(job);
      chunk = job.train(n);
      chunk_end = steady_clock::now();  // the steps only: checks, evaluation and checkpoints come after
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
    report.chunk(p, duration<double>(chunk_end - chunk_start).count() / static_cast<double>(n), job);
    if (on_progress) on_progress(p);
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

}  // namespace

FitResult run(Job& job, const LoopOptions& o, const std::function<void(const Progress&)>& on_progress) {
  Reporter report(o);
  report.send();  // running, step 0: the job shows while its workers form
  try {
    FitResult r = run_chunks(job, o, on_progress, report);
    report.finish(r);
    return r;
  } catch (const std::exception& e) {
    report.end("failed", e.what());
    throw;
  }
}

}  // namespace troupe::train
