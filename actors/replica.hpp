#pragma once
// A data-parallel replica: one actor per GPU (or per worker process on a
// CPU node) holding the whole model. Each step it computes gradients on its
// shard of the batch; gradients land in buckets inside the group's shared
// buffers and each bucket is all-reduced as soon as backward has filled it,
// while backward goes on; then every replica applies the same update.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/compute/tensor.hpp"
#include "actors/training.hpp"
#include "runtime/codec/codec.hpp"
#include "runtime/task.hpp"

namespace troupe::dp {

// The configuration and its checks are shared with the other strategies
// (actors/training.hpp); these are their data-parallel names.
using ReplicaConfig = train::TrainConfig;
using ConfigCheck = train::ConfigCheck;
using train::check_config;
/// The device a ReplicaConfig::device names, in this process.
inline compute::Device replica_device(const train::DeviceChoice& choice) { return train::device_of(choice); }

using StepStats = train::StepStats;
using EvalStats = train::EvalStats;

class Replica {
 public:
  explicit Replica(ReplicaConfig cfg);
  ~Replica();

  /// Joins the group (collective: every replica calls it), lays the gradient
  /// buckets out in the group's shared buffers. Returns the bucket count.
  Task<std::int64_t> setup();
  /// Runs n optimizer steps, continuing across epochs.
  Task<std::vector<StepStats>> train(std::int64_t n);
  /// Loss and accuracy on the test set (or its first limit examples).
  EvalStats evaluate(std::int64_t limit);
  /// The same on this replica's share of those examples (rank r of W takes
  /// the r-th of W contiguous parts): the replicas evaluate in parallel and
  /// the caller adds the counts (loss is the share's mean).
  EvalStats evaluate_share(std::int64_t limit);
  /// A hash of every parameter's bytes: equal on every replica after every step.
  std::uint64_t param_hash();
  std::int64_t steps_per_epoch();
  std::int64_t step() const;
  /// Writes parameters, optimizer state and the data position (step, epoch,
  /// batch) to `path` atomically; returns the step it holds.
  std::int64_t save(std::string path);
  /// Restores what save() wrote, after checking it was written for this
  /// configuration (model, replicas, batch, accumulation, seed, data);
  /// training then continues exactly where it left off. Returns the step.
  std::int64_t load(std::string path);
  int pid() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe::dp
