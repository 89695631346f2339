#include "actors/training.hpp"

#include <map>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "actors/compute/stream.hpp"
#include "actors/nn/tensor_parallel.hpp"
#include "runtime/coll/detail/gpu.hpp"
#include "runtime/errors.hpp"

namespace troupe::train {

DeviceChoice DeviceChoice::parse(std::string_view text) {
  if (text == "cuda") return cuda();
  const compute::Device d = compute::Device::parse(std::string(text));  // "cpu", "cuda:N", or the UsageError
  return d.is_cuda() ? cuda(d.index) : cpu();
}

std::string DeviceChoice::str() const {
  std::string s(to_string(kind));
  return is_cuda() && index >= 0 ? fmt::format("{}:{}", s, index) : s;
}

compute::Device device_of(const DeviceChoice& choice) {
  if (!choice.is_cuda()) return compute::Device::cpu();
  return compute::Device::cuda(choice.index < 0 ? coll::gpu::default_device() : choice.index);
}

EvalStats merge(const std::vector<EvalStats>& parts) {
  EvalStats e;
  double loss = 0;
  for (auto& p : parts) {
    e.correct += p.correct;
    e.total += p.total;
    loss += static_cast<double>(p.loss) * static_cast<double>(p.total);
  }
  e.loss = e.total ? static_cast<float>(loss / static_cast<double>(e.total)) : 0.0f;
  return e;
}

std::uint64_t param_hash(const std::vector<nn::Param*>& params) {
  std::uint64_t h = 1469598103934665603ull;
  for (auto* p : params) {
    auto v = p->value.to_vector();
    const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
    for (std::size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  }
  return h;
}

std::string model_text(const TrainConfig& cfg) {
  std::string widths;
  for (std::size_t i = 0; i < cfg.hidden.size();) {
    std::size_t j = i;
    while (j < cfg.hidden.size() && cfg.hidden[j] == cfg.hidden[i]) ++j;
    widths += fmt::format("{}-", j - i > 1 ? fmt::format("{}x{}", cfg.hidden[i], j - i) : std::to_string(cfg.hidden[i]));
    i = j;
  }
  return fmt::format("{}-{}{} {}{}", cfg.inputs, widths, cfg.classes, to_string(cfg.activation),
                     cfg.layernorm ? "+layernorm" : "");
}

nn::MlpSpec mlp_spec(const TrainConfig& c) {
  nn::MlpSpec s;
  s.inputs = c.inputs;
  s.hidden = c.hidden;
  s.classes = c.classes;
  s.activation = c.activation;
  s.dropout = c.dropout;
  s.layernorm = c.layernorm;
  for (auto i : c.tp_blocks) s.tp_blocks.push_back(static_cast<std::size_t>(i));  // check_config: none negative
  return s;
}

void check_config(const TrainConfig& cfg, ConfigCheck where) {
  if (cfg.batch < 1 || cfg.accumulation < 1 || cfg.epochs < 0)
    throw UsageError(fmt::format("replica: batch {} and accumulation {} must be at least 1, epochs {} at least 0",
                                 cfg.batch, cfg.accumulation, cfg.epochs));
  const compute::Device dev = device_of(cfg.device);
  if (where.devices_here && dev.is_cuda() && !compute::cuda_available())
    throw UsageError(fmt::format("replica: device '{}': no CUDA device answers in this process ({})", cfg.device,
                                 coll::gpu::built() ? "no GPU or no driver here" : "this build of troupe is CPU-only"));
  if (!is_precision(cfg.precision)) {
    std::vector<std::string_view> words;
    for (auto p : precisions) words.push_back(compute::to_string(p));
    throw UsageError(fmt::format("replica: precision '{}': expected {} (the element types a run computes in)",
                                 cfg.precision, or_list(words)));
  }
  if (cfg.precision != compute::DType::f32 && !dev.is_cuda())
    throw UsageError(fmt::format("replica: precision '{}' needs a GPU replica (device is '{}'): the host computes in f32",
                                 cfg.precision, cfg.device));
  if (cfg.precision != compute::DType::f32 && (cfg.dropout > 0 || cfg.layernorm))
    throw UsageError(fmt::format("replica: precision '{}' takes linear layers and activations only (no dropout or "
                                 "layernorm)",
                                 cfg.precision));
  for (auto i : cfg.tp_blocks)
    if (i < 0) throw UsageError(fmt::format("replica: tp_blocks: {} is not a hidden layer (they count from 0)", i));
  nn::tp_split_layers(mlp_spec(cfg), 1);  // blocks that are layers, apart, without layernorm or dropout
  if (where.data_here)
    data::check_fashion_mnist(cfg.data_dir.empty() ? data::fashion_mnist_dir() : cfg.data_dir, !cfg.data_dir.empty());
}

nn::Model make_model(const TrainConfig& cfg) { return nn::Model::mlp(mlp_spec(cfg), cfg.seed); }

nn::Model make_model(const TrainConfig& cfg, const nn::TensorParallel& tp) {
  return nn::Model::mlp(mlp_spec(cfg), cfg.seed, tp);
}

std::unique_ptr<optim::Optimizer> make_optimizer(const TrainConfig& cfg) {
  if (cfg.optimizer == optim::Algorithm::adamw)
    return std::make_unique<optim::AdamW>(optim::AdamWOptions{cfg.lr, 0.9f, 0.999f, 1e-8f, cfg.weight_decay});
  return std::make_unique<optim::Sgd>(optim::SgdOptions{cfg.lr, cfg.momentum, 0.0f, cfg.weight_decay, cfg.nesterov});
}

optim::LrSchedule make_lr_schedule(const TrainConfig& cfg) {
  return {cfg.schedule, cfg.lr, cfg.warmup_steps, cfg.total_steps, cfg.min_lr};
}

std::uint64_t micro_seed(const TrainConfig& cfg, std::int64_t step, int micro, std::uint32_t dp_rank) {
  return cfg.seed * 0x9E3779B97F4A7C15ull ^ (static_cast<std::uint64_t>(step) << 20) ^
         (static_cast<std::uint64_t>(micro) << 8) ^ dp_rank;
}

namespace {
// Workers of one process (replicas or stages in it, a test's runs) share one
// decoded copy of each data set: decoding 60,000 images costs far more than
// sharing them (tensors are immutable here; a train_limit makes its own copy).
data::Dataset cached(const std::string& dir, data::Split split) {
  static std::mutex mu;
  static std::map<std::pair<std::string, int>, data::Dataset> cache;
  const std::pair<std::string, int> key{dir, static_cast<int>(split)};
  {
    std::lock_guard lock(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  data::Dataset d = data::load_fashion_mnist(dir, split);
  std::lock_guard lock(mu);
  return cache.emplace(key, std::move(d)).first->second;
}
}  // namespace

data::Dataset load_train(const TrainConfig& cfg) {
  const std::string dir = cfg.data_dir.empty() ? data::fashion_mnist_dir() : cfg.data_dir;
  data::Dataset d = cached(dir, data::Split::train);
  if (cfg.train_limit > 0 && cfg.train_limit < d.size()) {
    d.images = d.images.narrow(0, cfg.train_limit).clone();  // a copy: the rest of the set is freed
    d.labels = d.labels.narrow(0, cfg.train_limit).clone();
  }
  return d;
}

data::Dataset load_test(const TrainConfig& cfg) {
  return cached(cfg.data_dir.empty() ? data::fashion_mnist_dir() : cfg.data_dir, data::Split::test);
}

DataStream::DataStream(const data::Dataset& train, const TrainConfig& cfg, std::uint32_t world, std::uint32_t rank)
    : train_(train), batch_(cfg.batch), accumulation_(cfg.accumulation), seed_(cfg.seed), world_(world), rank_(rank) {}

std::int64_t DataStream::per_rank() const {
  return data::DistributedSampler(train_.size(), static_cast<int>(world_), static_cast<int>(rank_)).per_replica();
}

std::int64_t DataStream::steps_per_epoch() const { return per_rank() / batch_ / accumulation_; }

void DataStream::open(std::int64_t epoch) {
  epoch_ = epoch;
  data::DistributedSampler sampler(train_.size(), static_cast<int>(world_), static_cast<int>(rank_), true, seed_);
  sampler.set_epoch(epoch_);
  batcher_ = std::make_unique<data::Batcher>(train_, sampler.indices(), batch_, true);
  used_ = 0;
}

void DataStream::next(compute::Tensor& x, compute::Tensor& y) {
  // Every step takes whole micro-batches: an epoch ends where the next step would not fit.
  if (!batcher_)
    open(epoch_);
  else if (used_ >= steps_per_epoch() * accumulation_)
    open(epoch_ + 1);
  if (!batcher_->next(x, y)) throw Error("data: ran out of batches inside an epoch");
  ++used_;
}

void DataStream::seek(std::int64_t epoch, std::int64_t used) {
  if (epoch == 0 && used == 0) {
    batcher_.reset();  // the very start: next() opens epoch 0
    epoch_ = 0;
    used_ = 0;
    return;
  }
  open(epoch);
  compute::Tensor x, y;
  for (std::int64_t i = 0; i < used; ++i)
    if (!batcher_->next(x, y)) break;
  used_ = used;
}

}  // namespace troupe::train
