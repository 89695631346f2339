#pragma once
// Data parallelism from actors, as PyTorch DDP / Ray Train run it: a mesh of
// replica actors (one per worker process, or in this process), one collective
// group over them, each step all-reducing gradient buckets while backward
// runs. After every chunk of steps the trainer checks that every replica's
// parameters are bit-identical.
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "actors/replica.hpp"
#include "runtime/troupe.hpp"

namespace troupe::dp {

struct TrainerOptions {
  int replicas = 2;
  bool processes = true;         ///< each replica in a worker process (else in this process)
  std::int64_t chunk_steps = 50; ///< steps between progress reports and parameter checks
  std::int64_t eval_limit = 0;   ///< test examples for each evaluation (0: all)
  bool eval_each_epoch = true;   ///< evaluate on the test set at the end of every epoch
  Options actor_options;         ///< resources etc. for each replica
  // Checkpoints and recovery.
  std::string checkpoint_dir;         ///< "": none (and no recovery)
  std::int64_t checkpoint_every = 0;  ///< steps between checkpoints (at chunk ends); 0: epoch ends only
  bool resume = true;                 ///< continue from checkpoint_dir's checkpoint when there is one
  /// Replica failures survived (-1: no limit), as Ray Train's max_failures or
  /// torchrun's --max-restarts: after each, the group is rebuilt with the
  /// restarted replica and every replica restores the latest checkpoint. One
  /// more failure stops the run with an Error naming every failure, the last
  /// cause, the last step reached and the last step saved. Needs a
  /// checkpoint directory (without one, the first failure ends the run).
  int max_failures = 3;
  /// After every chunk (tests; custom checks), with the replicas.
  std::function<void(std::int64_t step, Mesh<Replica>& replicas)> after_chunk;
};

/// What the trainer reports after each chunk.
struct Progress {
  std::int64_t step = 0, total_steps = 0, epoch = 0;
  float loss = 0;             ///< mean over replicas of the chunk's last step
  float lr = 0;
  double samples_per_s = 0;   ///< over the run so far
  double elapsed_s = 0;
  bool evaluated = false;     ///< an epoch ended: the test set was evaluated
  double test_accuracy = 0;
  float test_loss = 0;
  int recoveries = 0;
};

struct FitResult {
  std::vector<float> losses;  ///< per step, mean over replicas (= the global batch's mean loss)
  std::int64_t steps = 0;
  double seconds = 0, samples_per_s = 0;
  double accuracy = 0;
  float test_loss = 0;
  std::int64_t resumed_from = -1;  ///< the checkpoint step it started from (-1: a fresh run)
  int recoveries = 0;              ///< replica failures it recovered from
  std::uint64_t param_hash = 0;    ///< of the final parameters (equal on every replica)
  std::string checkpoint;          ///< the last checkpoint written ("" if none)
};

class DataParallelTrainer {
 public:
  DataParallelTrainer(Runtime& rt, ReplicaConfig cfg, TrainerOptions opts);
  /// Trains cfg.epochs epochs; on_progress runs after every chunk. With a
  /// checkpoint directory it writes <dir>/latest.troupeck at step 0, every
  /// checkpoint_every steps, at epoch ends and at the end; resumes from it;
  /// and survives a replica's death by restoring it on every replica.
  FitResult fit(const std::function<void(const Progress&)>& on_progress = {});
  /// Where fit() keeps its checkpoint.
  std::string checkpoint_path() const;

 private:
  Runtime& rt_;
  ReplicaConfig cfg_;
  TrainerOptions opts_;
  compute::Device device_;  ///< where the replicas train (cfg_.device, checked)
};

}  // namespace troupe::dp
