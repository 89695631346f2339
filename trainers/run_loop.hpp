#pragma once
// The run loop every training strategy shares: steps in chunks, progress
// reports, evaluation at epoch ends and at the end, checkpoints at their
// cadence, and recovery from a worker's failure (rebuild, restore the last
// checkpoint, go on). A strategy is a Job: how to form its workers, train a
// chunk, evaluate, save and load.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "actors/training.hpp"
#include "runtime/telemetry.hpp"

namespace troupe {
class Runtime;
}

namespace troupe::train {

/// What the trainer reports after each chunk.
struct Progress {
  std::int64_t step = 0, total_steps = 0, epoch = 0;
  float loss = 0;             ///< the global batch's mean loss at the chunk's last step
  float lr = 0;
  double samples_per_s = 0;   ///< over the run so far
  double elapsed_s = 0;
  bool evaluated = false;     ///< an epoch ended: the test set was evaluated
  double test_accuracy = 0;
  float test_loss = 0;
  int recoveries = 0;
  double bubble = -1;         ///< pipelines: the measured bubble over the chunk (-1: not a pipeline)
  std::int64_t first_step = 0;  ///< where this run started (a resumed run: its checkpoint's step)
};

struct FitResult {
  std::vector<float> losses;  ///< per step, the global batch's mean loss
  std::int64_t steps = 0;
  double seconds = 0, samples_per_s = 0;
  double accuracy = 0;
  float test_loss = 0;
  std::int64_t resumed_from = -1;  ///< the checkpoint step it started from (-1: a fresh run)
  int recoveries = 0;              ///< worker failures it recovered from
  std::uint64_t param_hash = 0;    ///< of the final parameters
  std::string checkpoint;          ///< the last checkpoint written ("" if none)
  double bubble = -1;              ///< pipelines: the measured bubble over the run
  std::vector<std::int64_t> peak_activations;  ///< pipelines: per stage actor, most micro-batches holding activations
  /// What the run could not do as asked and did otherwise (a tensor-parallel
  /// group that did not fit on one node), or should be told (a checkpoint
  /// resharded for this layout); each was also printed to stderr.
  std::vector<std::string> warnings;
};

/// A rank the driver watches while a chunk trains: who it is (rank, label,
/// peers, actor id; the times are unused) and its steps so far, as its actor
/// noted them (ActorRef::progress).
struct LiveRank {
  telemetry::RankTiming who;
  std::function<telemetry::StepProgress()> progress;
};

/// A strategy's workers, as the run loop drives them.
class Job {
 public:
  virtual ~Job() = default;
  /// Forms the workers' groups and sets them up; again after a failure.
  virtual void form() = 0;
  virtual std::int64_t steps_per_epoch() = 0;
  /// Trains n steps: one StepStats per step, loss being the global batch's
  /// mean, samples the examples the step used in all.
  virtual std::vector<StepStats> train(std::int64_t n) = 0;
  /// The test set (its first `limit` examples; 0: all).
  virtual EvalStats evaluate(std::int64_t limit) = 0;
  /// A hash of the parameters after `step`; Error when copies that must agree do not.
  virtual std::uint64_t check_params(std::int64_t step) = 0;
  /// Writes the workers' state after `step` to `path` (atomically); load
  /// restores it and returns its step.
  virtual void save(const std::string& path, std::int64_t step) = 0;
  virtual std::int64_t load(const std::string& path) = 0;
  /// After a failure: waits until every worker answers again (restarted).
  virtual void wait_alive(std::chrono::seconds limit) = 0;
  /// After every chunk (tests, custom checks).
  virtual void after_chunk(std::int64_t step) { (void)step; }
  /// Each rank's seconds per step over the last chunk train() ran, and the
  /// mean split into phases, for the cluster head (`troupe jobs`).
  virtual void timings(std::vector<telemetry::RankTiming>& ranks, telemetry::PhaseSplit& split) {
    (void)ranks;
    (void)split;
  }
  /// The ranks to score while a chunk trains (live stragglers), after form();
  /// the same ranks, labels and peers as timings(). Empty: none.
  virtual std::vector<LiveRank> live_ranks() { return {}; }
  /// The measured bubble of the last chunk's steps (-1: not a pipeline).
  virtual double bubble(const std::vector<StepStats>& chunk) {
    (void)chunk;
    return -1;
  }
};

struct LoopOptions {
  std::string what = "training";    ///< names the strategy in errors ("data parallel", "pipeline")
  std::int64_t epochs = 1;
  std::int64_t chunk_steps = 50;
  std::int64_t eval_limit = 0;
  bool eval_each_epoch = true;
  std::string checkpoint;           ///< the checkpoint's path ("": none, and no recovery)
  std::int64_t checkpoint_every = 0;
  bool resume = true;
  int max_failures = 3;
  // For the warm-up warning.
  std::int64_t warmup_steps = 0;
  float lr = 0;
  // For the cluster head's job table (Runtime::report_job): nullptr, no reports.
  Runtime* runtime = nullptr;
  std::string name;                 ///< the job's name ("": `what`)
};

/// The loop's options from a strategy's: `what` names it in errors, `o` is
/// any options struct with the shared keys (chunk_steps, eval_limit,
/// eval_each_epoch, checkpoint_every, resume, max_failures).
template <class Options>
LoopOptions loop_options(std::string what, const TrainConfig& cfg, const Options& o, std::string checkpoint) {
  LoopOptions lo;
  lo.what = std::move(what);
  lo.epochs = cfg.epochs;
  lo.chunk_steps = o.chunk_steps;
  lo.eval_limit = o.eval_limit;
  lo.eval_each_epoch = o.eval_each_epoch;
  lo.checkpoint = std::move(checkpoint);
  lo.checkpoint_every = o.checkpoint_every;
  lo.resume = o.resume;
  lo.max_failures = o.max_failures;
  lo.warmup_steps = cfg.warmup_steps;
  lo.lr = cfg.lr;
  lo.name = o.job_name;
  return lo;
}

/// Runs the job to the end (see the file comment); on_progress after every chunk.
FitResult run(Job& job, const LoopOptions& o, const std::function<void(const Progress&)>& on_progress = {});

}  // namespace troupe::train
