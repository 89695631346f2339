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
#include "trainers/run_loop.hpp"
#include "runtime/troupe.hpp"

namespace troupe::dp {

struct TrainerOptions {
  int replicas = 2;
  bool processes = true;         ///< each replica in a worker process (else in this process)
  std::int64_t chunk_steps = 50; ///< steps between progress reports and parameter checks
  std::string job_name;          ///< the name `troupe jobs` shows ("": "data parallel")
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

using Progress = train::Progress;
using FitResult = train::FitResult;

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
