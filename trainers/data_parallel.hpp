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
  std::int64_t eval_limit = 0;   ///< test examples for the final evaluation (0: all)
  Options actor_options;         ///< resources etc. for each replica
};

/// What the trainer reports after each chunk.
struct Progress {
  std::int64_t step = 0, total_steps = 0, epoch = 0;
  float loss = 0;             ///< mean over replicas of the chunk's last step
  float lr = 0;
  double samples_per_s = 0;   ///< over the run so far
  double elapsed_s = 0;
};

struct FitResult {
  std::vector<float> losses;  ///< per step, mean over replicas (= the global batch's mean loss)
  std::int64_t steps = 0;
  double seconds = 0, samples_per_s = 0;
  double accuracy = 0;
  float test_loss = 0;
};

class DataParallelTrainer {
 public:
  DataParallelTrainer(Runtime& rt, ReplicaConfig cfg, TrainerOptions opts);
  /// Trains cfg.epochs epochs; on_progress runs after every chunk.
  FitResult fit(const std::function<void(const Progress&)>& on_progress = {});

 private:
  Runtime& rt_;
  ReplicaConfig cfg_;
  TrainerOptions opts_;
};

}  // namespace troupe::dp
