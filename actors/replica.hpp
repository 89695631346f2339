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
#include "runtime/codec/codec.hpp"
#include "runtime/task.hpp"

namespace troupe::dp {

/// The device a ReplicaConfig::device names, in this process (UsageError
/// naming the text when it is neither cpu nor cuda[:N]).
compute::Device replica_device(const std::string& text);

struct ReplicaConfig;

/// What check_config may take for granted about where replicas will run.
struct ConfigCheck {
  bool devices_here = false;  ///< the replicas run in this process: its device must answer
  bool data_here = false;     ///< they read their data on this machine: the files must be there
};
/// Checks a configuration before anything is spawned (the trainer does, and
/// every replica again): the choices named by text (device, precision,
/// activation, optimizer, schedule), the sizes, precision against device and
/// layers; with `where`, the device and the data files. UsageError (or
/// DataError) naming what is wrong.
void check_config(const ReplicaConfig& cfg, ConfigCheck where = {});

/// Everything a replica needs to train; the same on every replica.
struct ReplicaConfig {
  // model: an MLP
  std::int64_t inputs = 784;
  std::vector<std::int64_t> hidden{1024, 1024};
  std::int64_t classes = 10;
  std::string activation = "relu";
  float dropout = 0.0f;
  bool layernorm = false;
  std::uint64_t seed = 1;
  // data: Fashion-MNIST
  std::string data_dir;        ///< empty: data::fashion_mnist_dir()
  std::int64_t train_limit = 0;  ///< use the first N training examples (0: all)
  std::int64_t batch = 128;    ///< per replica per micro-batch
  int accumulation = 1;        ///< micro-batches per optimizer step (no all-reduce until the last)
  std::int64_t epochs = 1;     ///< sets the schedule's length when total_steps is 0
  // optimizer
  std::string optimizer = "sgd";  ///< sgd | adamw
  float lr = 0.05f, momentum = 0.9f, weight_decay = 0.0f;
  bool nesterov = false;
  std::string schedule = "constant";  ///< constant | cosine | linear
  std::int64_t warmup_steps = 0, total_steps = 0;
  float min_lr = 0.0f;
  float clip_norm = 0.0f;  ///< 0: no clipping
  // gradient buckets (DDP's bucket_cap_mb and its small first bucket)
  std::int64_t first_bucket_bytes = 1 << 20;
  std::int64_t bucket_bytes = 25 << 20;
  std::string group = "dp";  ///< the collective group the replicas form
  int threads = 1;           ///< host compute threads in this replica
  /// Where the model trains: "cpu", or "cuda" (the GPU this process was given:
  /// a GPU worker's own, else device 0) or "cuda:N". A GPU replica keeps its
  /// parameters, gradients and optimizer state on the device and needs a
  /// device group (memory = "cuda": NCCL, or cuda_local when replicas share
  /// a GPU) on that same device.
  std::string device = "cpu";
  /// "f32", or "bf16" / "f16" on a GPU: each batch is cast to it, so the
  /// linear layers and activations compute in half precision (float32
  /// weights, gradients, updates and all-reduce; see compute/half.hpp).
  std::string precision = "f32";

  TROUPE_FIELDS(inputs, hidden, classes, activation, dropout, layernorm, seed, data_dir, train_limit, batch,
                accumulation, epochs, optimizer, lr, momentum, weight_decay, nesterov, schedule, warmup_steps, total_steps,
                min_lr, clip_norm, first_bucket_bytes, bucket_bytes, group, threads, device, precision)
};

/// One optimizer step as a replica saw it.
struct StepStats {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  float loss = 0;  ///< this replica's mean loss over its micro-batches
  float lr = 0;
  std::int64_t samples = 0;  ///< examples this replica used
  TROUPE_FIELDS(step, epoch, loss, lr, samples)
};

struct EvalStats {
  std::int64_t correct = 0, total = 0;
  float loss = 0;
  TROUPE_FIELDS(correct, total, loss)
};

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
