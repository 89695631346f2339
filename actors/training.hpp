#pragma once
// What every training strategy builds a worker from: the run's configuration
// (model, data, optimizer; checked in one place), the model, optimizer and
// learning-rate schedule it describes, and the data position (which
// micro-batch comes next, saved and restored by checkpoints). The
// data-parallel replica and the pipeline stage both use these, so the same
// configuration gives the same model, the same batches and the same updates
// whichever strategy runs it.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "actors/compute/tensor.hpp"
#include "actors/data/idx.hpp"
#include "actors/data/sampler.hpp"
#include "actors/nn/model.hpp"
#include "actors/optim/optimizer.hpp"
#include "runtime/codec/codec.hpp"

namespace troupe::train {

/// Where a worker's model trains (TrainConfig::device): the host, or a GPU.
/// A GPU without an index is the one this worker process was given (a GPU
/// worker's own), else device 0; with one, that device of this process.
struct DeviceChoice {
  compute::Device::Kind kind = compute::Device::Kind::cpu;
  int index = -1;  ///< cuda: the device; -1: this process's GPU (cpu: always -1)

  static DeviceChoice cpu() noexcept { return {}; }
  /// cuda(): the GPU this process was given; cuda(n): device n.
  static DeviceChoice cuda(int index = -1) noexcept { return {compute::Device::Kind::cuda, index < 0 ? -1 : index}; }
  /// "cpu", "cuda" or "cuda:N"; anything else is a UsageError naming the text.
  static DeviceChoice parse(std::string_view text);
  /// The text parse reads: "cpu", "cuda", "cuda:1".
  std::string str() const;
  bool is_cuda() const noexcept { return kind == compute::Device::Kind::cuda; }
  bool operator==(const DeviceChoice&) const = default;
  TROUPE_FIELDS(kind, index)
};

}  // namespace troupe::train

/// fmt prints a DeviceChoice as the text it parses from ("cuda:1").
template <>
struct fmt::formatter<troupe::train::DeviceChoice> : fmt::formatter<std::string_view> {
  template <class Context>
  auto format(const troupe::train::DeviceChoice& d, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(d.str(), ctx);
  }
};

namespace troupe::train {

/// What a run may compute in (TrainConfig::precision): f32, or bf16 / f16 on
/// a GPU. Listed once: topology files and check_config take these words.
inline constexpr std::array<compute::DType, 3> precisions{compute::DType::f32, compute::DType::bf16,
                                                           compute::DType::f16};
constexpr bool is_precision(compute::DType t) noexcept {
  for (auto p : precisions)
    if (p == t) return true;
  return false;
}

/// Everything a worker needs to train; the same on every worker of a run.
struct TrainConfig {
  // model: an MLP
  std::int64_t inputs = 784;
  std::vector<std::int64_t> hidden{1024, 1024};
  std::int64_t classes = 10;
  nn::Activation activation = nn::Activation::relu;
  float dropout = 0.0f;
  bool layernorm = false;
  /// Tensor parallelism: the hidden layers that live split over a stage's tp
  /// ranks (nn::MlpSpec::tp_blocks: the Linear making each is column-
  /// parallel, the one reading it row-parallel). Ignored where tp is 1.
  std::vector<std::int64_t> tp_blocks;
  std::uint64_t seed = 1;
  // data: Fashion-MNIST
  std::string data_dir;        ///< empty: data::fashion_mnist_dir()
  std::int64_t train_limit = 0;  ///< use the first N training examples (0: all)
  std::int64_t batch = 128;    ///< per replica per micro-batch
  int accumulation = 1;        ///< micro-batches per optimizer step (a pipeline's micro-batches)
  std::int64_t epochs = 1;     ///< sets the schedule's length when total_steps is 0
  // optimizer
  optim::Algorithm optimizer = optim::Algorithm::sgd;
  float lr = 0.05f, momentum = 0.9f, weight_decay = 0.0f;
  bool nesterov = false;
  optim::LrKind schedule = optim::LrKind::constant;
  std::int64_t warmup_steps = 0, total_steps = 0;
  float min_lr = 0.0f;
  float clip_norm = 0.0f;  ///< 0: no clipping
  // gradient buckets (DDP's bucket_cap_mb and its small first bucket)
  std::int64_t first_bucket_bytes = 1 << 20;
  std::int64_t bucket_bytes = 25 << 20;
  std::string group = "dp";  ///< the collective group the data-parallel replicas form
  int threads = 1;           ///< host compute threads in this worker
  /// Where the model trains: cpu(), or cuda() (the GPU this process was
  /// given: a GPU worker's own, else device 0) or cuda(n). A GPU replica
  /// keeps its parameters, gradients and optimizer state on the device and
  /// needs a device group (memory = Memory::cuda: NCCL, or cuda_local when
  /// replicas share a GPU) on that same device.
  DeviceChoice device = DeviceChoice::cpu();
  /// f32, or bf16 / f16 on a GPU (one of `precisions`): each batch is cast to
  /// it, so the linear layers and activations compute in half precision
  /// (float32 weights, gradients, updates and all-reduce; see compute/half.hpp).
  compute::DType precision = compute::DType::f32;

  TROUPE_FIELDS(inputs, hidden, classes, activation, dropout, layernorm, tp_blocks, seed, data_dir, train_limit, batch,
                accumulation, epochs, optimizer, lr, momentum, weight_decay, nesterov, schedule, warmup_steps, total_steps,
                min_lr, clip_norm, first_bucket_bytes, bucket_bytes, group, threads, device, precision)
};

/// One optimizer step as a worker saw it.
struct StepStats {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  float loss = 0;  ///< the mean loss over this worker's micro-batches (a pipeline: its last stage's)
  float lr = 0;
  std::int64_t samples = 0;  ///< examples this worker used (a pipeline: its replica's)
  double busy_s = 0;         ///< pipeline stages: time spent computing in the step
  double wall_s = 0;         ///< pipeline stages: the step's time
  std::int64_t peak_live = 0;  ///< pipeline stages: most micro-batches holding activations at once
  // Where this worker's step went (data-parallel replicas), for `troupe jobs`:
  double data_s = 0, forward_s = 0, backward_s = 0;
  double wait_s = 0;       ///< waiting for the gradients' all-reduce after backward
  double optimizer_s = 0;
  TROUPE_FIELDS(step, epoch, loss, lr, samples, busy_s, wall_s, peak_live, data_s, forward_s, backward_s, wait_s,
                optimizer_s)
};

struct EvalStats {
  std::int64_t correct = 0, total = 0;
  float loss = 0;
  TROUPE_FIELDS(correct, total, loss)
};

/// Counts added up; the loss the mean over every example.
EvalStats merge(const std::vector<EvalStats>& parts);
/// A hash (FNV-1a) of the parameters' bytes, in order.
std::uint64_t param_hash(const std::vector<nn::Param*>& params);

/// The device a TrainConfig::device names, in this process (cuda(): the GPU
/// this process was given).
compute::Device device_of(const DeviceChoice& choice);

/// What check_config may take for granted about where workers will run.
struct ConfigCheck {
  bool devices_here = false;  ///< the workers run in this process: its device must answer
  bool data_here = false;     ///< they read their data on this machine: the files must be there
};
/// Checks a configuration before anything is spawned (the trainer does, and
/// every worker again): the precision (one of `precisions`), the sizes,
/// precision against device and layers; with `where`, the device and the
/// data files. UsageError (or DataError) naming what is wrong.
void check_config(const TrainConfig& cfg, ConfigCheck where = {});

/// The model cfg describes, initialised from cfg.seed (the same everywhere).
nn::MlpSpec mlp_spec(const TrainConfig& cfg);
/// The model's shape in a few words ("784-1024x2-10 relu", "+layernorm"):
/// what a checkpoint records so that a run of another model is refused.
std::string model_text(const TrainConfig& cfg);
nn::Model make_model(const TrainConfig& cfg);
/// Tensor-parallel rank tp.rank's part of it (cfg.tp_blocks split over tp.size).
nn::Model make_model(const TrainConfig& cfg, const nn::TensorParallel& tp);
std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& cfg);
/// total_steps 0: set it once the steps per epoch are known.
optim::LrSchedule make_lr_schedule(const TrainConfig& cfg);
/// The dropout draws of one micro-batch: the same for a replica's
/// micro-batch whichever strategy runs it.
std::uint64_t micro_seed(const TrainConfig& cfg, std::int64_t step, int micro, std::uint32_t dp_rank);

/// The training set cfg names (train_limit applied) and its test set.
data::Dataset load_train(const TrainConfig& cfg);
data::Dataset load_test(const TrainConfig& cfg);

/// The data position of one data-parallel rank: micro-batches of cfg.batch in
/// the order DistributedSampler gives (re-shuffled each epoch), cfg.accumulation
/// per step; an epoch ends where the next step would not fit.
class DataStream {
 public:
  DataStream(const data::Dataset& train, const TrainConfig& cfg, std::uint32_t world, std::uint32_t rank);
  /// The next micro-batch (views into buffers the following call reuses).
  void next(compute::Tensor& x, compute::Tensor& y);
  std::int64_t steps_per_epoch() const;
  std::int64_t per_rank() const;
  std::int64_t epoch() const noexcept { return epoch_; }
  std::int64_t used() const noexcept { return batcher_ ? used_ : 0; }
  /// Back to a saved position: (0, 0) is the very start.
  void seek(std::int64_t epoch, std::int64_t used);

 private:
  void open(std::int64_t epoch);
  const data::Dataset& train_;
  std::int64_t batch_;
  int accumulation_;
  std::uint64_t seed_;
  std::uint32_t world_, rank_;
  std::unique_ptr<data::Batcher> batcher_;
  std::int64_t epoch_ = 0, used_ = 0;
};

}  // namespace troupe::train
