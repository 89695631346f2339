#include "actors/replica.hpp"

#include <unistd.h>

#include <map>

#include <fmt/format.h>

#include "actors/ckpt/checkpoint.hpp"
#include "actors/compute/half.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/stream.hpp"
#include "actors/data/sampler.hpp"
#include "actors/nn/loss.hpp"
#include "actors/nn/model.hpp"
#include "actors/optim/optimizer.hpp"
#include "runtime/coll/detail/gpu.hpp"
#include "runtime/coll/group.hpp"
#include "runtime/troupe.hpp"
#include "runtime/when.hpp"

namespace troupe::dp {

using compute::Tensor;

namespace {

// Gradients of whole layers, last layer first (the order backward finishes
// them), filled up to the cap; a layer larger than the cap is a bucket alone.
struct Bucket {
  std::vector<std::size_t> layers;
  std::vector<nn::Param*> params;
  std::int64_t elems = 0;
  std::span<float> buf;
  std::size_t pending = 0;
  Ref<void> reduced;
};

nn::MlpSpec spec_of(const ReplicaConfig& c) {
  nn::MlpSpec s;
  s.inputs = c.inputs;
  s.hidden = c.hidden;
  s.classes = c.classes;
  if (c.activation == "relu")
    s.activation = nn::Activation::relu;
  else if (c.activation == "gelu")
    s.activation = nn::Activation::gelu;
  else
    throw UsageError(fmt::format("activation '{}': expected relu or gelu", c.activation));
  s.dropout = c.dropout;
  s.layernorm = c.layernorm;
  return s;
}

}  // namespace

compute::Device replica_device(const std::string& text) {
  if (text == "cuda") return compute::Device::cuda(coll::gpu::default_device());
  return compute::Device::parse(text);
}

struct Replica::Impl {
  ReplicaConfig cfg;
  compute::Device dev;     // where the model trains
  compute::DType dtype = compute::DType::f32;  // the input's, and so the activations'
  Tensor x_dev, y_dev;     // a GPU replica's batch, copied in each micro-batch
  Tensor x_half;           // the batch cast to a half dtype
  Tensor test_x, test_y;   // and its test set, copied in once (cast too)
  data::Dataset train, test;
  nn::Model model;
  std::unique_ptr<optim::Optimizer> opt;
  optim::LrSchedule schedule;
  std::shared_ptr<coll::Group> group;
  std::uint32_t rank = 0, world = 1;
  std::vector<Bucket> buckets;
  std::vector<std::vector<std::size_t>> buckets_of_layer;
  std::int64_t step = 0, epoch = 0;
  std::unique_ptr<data::Batcher> batcher;
  nn::Tape tape;
  nn::CrossEntropy ce;

  std::int64_t batches_used = 0;  // of the current epoch's batcher

  // Each replica's share of the data set, as the sampler pads it.
  std::int64_t per_replica() const {
    return data::DistributedSampler(train.size(), static_cast<int>(world), static_cast<int>(rank)).per_replica();
  }
  std::int64_t steps_per_epoch() const { return per_replica() / cfg.batch / cfg.accumulation; }

  void next_batch(Tensor& x, Tensor& y) {
    // Every step takes whole micro-batches: an epoch ends where the next step would not fit.
    if (!batcher || batches_used >= steps_per_epoch() * cfg.accumulation) {
      if (batcher) ++epoch;
      data::DistributedSampler sampler(train.size(), static_cast<int>(world), static_cast<int>(rank), true, cfg.seed);
      sampler.set_epoch(epoch);
      batcher = std::make_unique<data::Batcher>(train, sampler.indices(), cfg.batch, true);
      batches_used = 0;
    }
    if (!batcher->next(x, y)) throw Error("replica: ran out of batches inside an epoch");
    ++batches_used;
  }

  // The batcher of `at_epoch` with `used` batches taken (a restored position).
  void seek(std::int64_t at_epoch, std::int64_t used) {
    epoch = at_epoch;
    data::DistributedSampler sampler(train.size(), static_cast<int>(world), static_cast<int>(rank), true, cfg.seed);
    sampler.set_epoch(epoch);
    batcher = std::make_unique<data::Batcher>(train, sampler.indices(), cfg.batch, true);
    Tensor x, y;
    for (std::int64_t i = 0; i < used; ++i)
      if (!batcher->next(x, y)) break;
    batches_used = used;
  }

  // What a checkpoint must agree on to continue this run.
  std::map<std::string, std::string> identity() const {
    return {{"replicas", std::to_string(world)},          {"batch", std::to_string(cfg.batch)},
            {"accumulation", std::to_string(cfg.accumulation)}, {"seed", std::to_string(cfg.seed)},
            {"train_examples", std::to_string(train.size())}, {"optimizer", cfg.optimizer}};
  }

  EvalStats evaluate(std::int64_t from, std::int64_t to);  // test examples [from, to)

  // A host batch where the model is: itself on the host, else copied into
  // `slot` on the device (reused; the copy is ordered after the work that
  // read the previous batch there).
  const Tensor& on_device(const Tensor& host, Tensor& slot) const {
    if (!dev.is_cuda()) return host;
    if (!slot.defined() || slot.shape() != host.shape() || slot.dtype() != host.dtype())
      slot = Tensor::empty(host.shape(), host.dtype(), dev);
    slot.copy_from(host);
    return slot;
  }
  // The model's input: the batch on the device, in the run's precision.
  const Tensor& input(const Tensor& host) {
    const Tensor& x = on_device(host, x_dev);
    if (dtype == compute::DType::f32) return x;
    if (!x_half.defined() || x_half.shape() != x.shape()) x_half = Tensor::empty(x.shape(), dtype, dev);
    compute::cast(x, x_half);
    return x_half;
  }

  void on_layer_ready(std::size_t layer) {
    for (auto b : buckets_of_layer[layer])
      if (--buckets[b].pending == 0) buckets[b].reduced = group->allreduce(buckets[b].buf, coll::Op::avg);
  }
};

void check_config(const ReplicaConfig& cfg, ConfigCheck where) {
  if (cfg.batch < 1 || cfg.accumulation < 1 || cfg.epochs < 0)
    throw UsageError(fmt::format("replica: batch {} and accumulation {} must be at least 1, epochs {} at least 0",
                                 cfg.batch, cfg.accumulation, cfg.epochs));
  const compute::Device dev = replica_device(cfg.device);
  if (where.devices_here && dev.is_cuda() && !compute::cuda_available())
    throw UsageError(fmt::format("replica: device '{}': no CUDA device answers in this process ({})", cfg.device,
                                 coll::gpu::built() ? "no GPU or no driver here" : "this build of troupe is CPU-only"));
  if (cfg.precision != "f32" && cfg.precision != "bf16" && cfg.precision != "f16")
    throw UsageError(fmt::format("replica: precision '{}': expected f32, bf16 or f16", cfg.precision));
  if (cfg.precision != "f32" && !dev.is_cuda())
    throw UsageError(fmt::format("replica: precision '{}' needs a GPU replica (device is '{}'): the host computes in f32",
                                 cfg.precision, cfg.device));
  if (cfg.precision != "f32" && (cfg.dropout > 0 || cfg.layernorm))
    throw UsageError(fmt::format("replica: precision '{}' takes linear layers and activations only (no dropout or "
                                 "layernorm)",
                                 cfg.precision));
  (void)spec_of(cfg);  // the activation
  if (cfg.optimizer != "sgd" && cfg.optimizer != "adamw")
    throw UsageError(fmt::format("optimizer '{}': expected sgd or adamw", cfg.optimizer));
  (void)optim::LrSchedule::parse(cfg.schedule);
  if (where.data_here)
    data::check_fashion_mnist(cfg.data_dir.empty() ? data::fashion_mnist_dir() : cfg.data_dir, !cfg.data_dir.empty());
}

Replica::Replica(ReplicaConfig cfg) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  check_config(cfg, {.devices_here = true});
  m.cfg = cfg;
  m.dev = replica_device(cfg.device);
  if (cfg.precision != "f32") m.dtype = cfg.precision == "bf16" ? compute::DType::bf16 : compute::DType::f16;
  compute::set_num_threads(cfg.threads);
  const std::string dir = cfg.data_dir.empty() ? data::fashion_mnist_dir() : cfg.data_dir;
  m.train = data::load_fashion_mnist(dir, data::Split::train);
  if (cfg.train_limit > 0 && cfg.train_limit < m.train.size()) {
    m.train.images = m.train.images.narrow(0, cfg.train_limit);
    m.train.labels = m.train.labels.narrow(0, cfg.train_limit);
  }
  m.test = data::load_fashion_mnist(dir, data::Split::test);
  m.model = nn::Model::mlp(spec_of(cfg), cfg.seed);
  if (cfg.optimizer == "sgd")
    m.opt = std::make_unique<optim::Sgd>(optim::SgdOptions{cfg.lr, cfg.momentum, 0.0f, cfg.weight_decay, cfg.nesterov});
  else
    m.opt = std::make_unique<optim::AdamW>(optim::AdamWOptions{cfg.lr, 0.9f, 0.999f, 1e-8f, cfg.weight_decay});
  m.schedule = {optim::LrSchedule::parse(cfg.schedule), cfg.lr, cfg.warmup_steps, cfg.total_steps, cfg.min_lr};
  if (m.dev.is_cuda()) m.model.to(m.dev);
}

Replica::~Replica() = default;

Task<std::int64_t> Replica::setup() {
  auto& m = *impl_;
  m.group = coll::group(m.cfg.group);
  m.rank = m.group->rank();
  m.world = m.group->size();
  // Gradients live in the group's buffers, so the group's memory is the model's.
  if (m.dev.is_cuda() != (m.group->memory() == "cuda"))
    throw UsageError(fmt::format("replica: the model is on {} but group '{}' has {} buffers (memory = \"{}\" is needed)",
                                 m.dev.str(), m.group->name(), m.group->memory(), m.dev.is_cuda() ? "cuda" : "host"));
  if (m.dev.is_cuda() && m.group->device() != m.dev.index)
    throw UsageError(fmt::format("replica: the model is on {} but rank {} of group '{}' uses cuda:{}", m.dev.str(),
                                 m.rank, m.group->name(), m.group->device()));
  // Each bucket's all-reduce waits, on the GPU, for the backward kernels
  // queued before it (this thread's work goes on the legacy default stream).
  if (m.dev.is_cuda()) m.group->after(nullptr);
  if (m.schedule.total_steps == 0) m.schedule.total_steps = m.cfg.epochs * m.steps_per_epoch();
  m.buckets.clear();
  m.buckets_of_layer.assign(m.model.size(), {});
  const std::int64_t first_cap = std::max<std::int64_t>(1, m.cfg.first_bucket_bytes / 4);
  const std::int64_t cap = std::max<std::int64_t>(1, m.cfg.bucket_bytes / 4);
  for (std::size_t i = m.model.size(); i-- > 0;) {
    auto ps = m.model.layer_params(i);
    if (ps.empty()) continue;
    std::int64_t n = 0;
    for (auto* p : ps) n += p->value.numel();
    const std::int64_t limit = m.buckets.size() <= 1 ? first_cap : cap;  // the open bucket's cap
    if (m.buckets.empty() || (m.buckets.back().elems > 0 && m.buckets.back().elems + n > limit)) m.buckets.emplace_back();
    auto& b = m.buckets.back();
    b.layers.push_back(i);
    for (auto* p : ps) b.params.push_back(p);
    b.elems += n;
    m.buckets_of_layer[i].push_back(m.buckets.size() - 1);
  }
  // The gradients live in the group's shared buffers: backward writes them
  // where the all-reduce reads them, with no copy in or out.
  for (auto& b : m.buckets) {
    b.buf = co_await m.group->alloc<float>(static_cast<std::size_t>(b.elems));
    std::int64_t off = 0;
    for (auto* p : b.params) {
      p->grad = Tensor::wrap(b.buf.data() + off, p->value.shape(), m.dev, m.group);
      p->grad.zero();
      p->grad_valid = false;
      off += p->value.numel();
    }
  }
  co_return static_cast<std::int64_t>(m.buckets.size());
}

Task<std::vector<StepStats>> Replica::train(std::int64_t n) {
  auto& m = *impl_;
  if (!m.group) throw UsageError("replica: train() before setup()");
  if (m.steps_per_epoch() == 0)
    throw UsageError(fmt::format("replica: {} examples over {} replicas do not fill one step of {} x {}", m.train.size(),
                                 m.world, m.cfg.batch, m.cfg.accumulation));
  std::vector<StepStats> out;
  auto params = m.model.params();
  const std::function<void(std::size_t)> hook = [&m](std::size_t layer) { m.on_layer_ready(layer); };
  for (std::int64_t k = 0; k < n; ++k) {
    StepStats st;
    st.lr = m.schedule.at(m.step);
    m.opt->set_lr(st.lr);
    m.model.zero_grad();
    double loss = 0;
    for (int micro = 0; micro < m.cfg.accumulation; ++micro) {
      Tensor x, y;
      m.next_batch(x, y);
      st.epoch = m.epoch;
      const std::uint64_t seed = m.cfg.seed * 0x9E3779B97F4A7C15ull ^ (static_cast<std::uint64_t>(m.step) << 20) ^
                                 (static_cast<std::uint64_t>(micro) << 8) ^ m.rank;
      Tensor logits = m.model.forward(m.input(x), m.tape, {true, seed});
      Tensor d = m.ce.forward_backward(logits, m.on_device(y, m.y_dev));
      if (m.cfg.accumulation > 1) compute::scale_(d, 1.0f / static_cast<float>(m.cfg.accumulation));
      const bool sync = micro == m.cfg.accumulation - 1 && m.world > 1;  // no-sync micro-batches before the last
      if (sync)
        for (auto& b : m.buckets) b.pending = b.layers.size();
      m.model.backward(d, m.tape, sync ? hook : std::function<void(std::size_t)>{});
      loss += m.ce.loss();
      st.samples += x.size(0);
    }
    if (m.world > 1) {
      std::vector<Ref<void>> reduced;
      for (auto& b : m.buckets) reduced.push_back(b.reduced);
      co_await when_all(std::move(reduced));
    }
    if (m.cfg.clip_norm > 0) optim::clip_grad_norm(params, m.cfg.clip_norm);
    m.opt->step(params);
    st.step = ++m.step;
    st.loss = static_cast<float>(loss / m.cfg.accumulation);
    out.push_back(st);
  }
  co_return out;
}

EvalStats Replica::evaluate(std::int64_t limit) {
  auto& m = *impl_;
  const std::int64_t n = limit > 0 ? std::min(limit, m.test.size()) : m.test.size();
  return m.evaluate(0, n);
}

EvalStats Replica::evaluate_share(std::int64_t limit) {
  auto& m = *impl_;
  const std::int64_t n = limit > 0 ? std::min(limit, m.test.size()) : m.test.size();
  const auto W = static_cast<std::int64_t>(m.world), r = static_cast<std::int64_t>(m.rank);
  return m.evaluate(n * r / W, n * (r + 1) / W);
}

EvalStats Replica::Impl::evaluate(std::int64_t from, std::int64_t to) {
  auto& m = *this;
  const std::int64_t n = to - from;
  EvalStats e;
  nn::Tape tape;
  nn::CrossEntropy ce;
  double loss = 0;
  if (dev.is_cuda() && !test_x.defined()) {
    test_x = test.images.to(dev);
    if (dtype != compute::DType::f32) test_x = compute::cast_to(test_x, dtype);
    test_y = test.labels.to(dev);
  }
  const Tensor& xs = dev.is_cuda() ? test_x : test.images;
  const Tensor& ys = dev.is_cuda() ? test_y : test.labels;
  for (std::int64_t at = from; at < to; at += 1000) {
    const std::int64_t b = std::min<std::int64_t>(1000, to - at);
    Tensor logits = m.model.forward(xs.narrow(at, b), tape, {false, 0});
    ce.forward_backward(logits, ys.narrow(at, b));
    loss += static_cast<double>(ce.loss()) * static_cast<double>(b);
    e.correct += static_cast<std::int64_t>(ce.correct());
  }
  e.total = n;
  e.loss = n ? static_cast<float>(loss / static_cast<double>(n)) : 0.0f;
  return e;
}

std::uint64_t Replica::param_hash() {
  std::uint64_t h = 1469598103934665603ull;
  for (auto* p : impl_->model.params()) {
    auto v = p->value.to_vector();
    const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
    for (std::size_t i = 0; i < v.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 1099511628211ull;
  }
  return h;
}

std::int64_t Replica::steps_per_epoch() { return impl_->steps_per_epoch(); }
std::int64_t Replica::step() const { return impl_->step; }
int Replica::pid() const { return static_cast<int>(::getpid()); }

std::int64_t Replica::save(std::string path) {
  auto& m = *impl_;
  auto meta = m.identity();
  meta["kind"] = "troupe.dp.replica";
  meta["step"] = std::to_string(m.step);
  meta["epoch"] = std::to_string(m.epoch);
  meta["batches_used"] = std::to_string(m.batcher ? m.batches_used : 0);
  ckpt::save(path, ckpt::snapshot(m.model, m.opt.get(), meta));
  return m.step;
}

std::int64_t Replica::load(std::string path) {
  auto& m = *impl_;
  if (!m.group) throw UsageError("replica: load() before setup()");
  const ckpt::Checkpoint c = ckpt::load(path);
  auto get = [&](const std::string& key) {
    auto it = c.meta.find(key);
    if (it == c.meta.end()) throw ckpt::CheckpointError(fmt::format("{}: not a data-parallel checkpoint (no '{}')", path, key));
    return it->second;
  };
  if (get("kind") != "troupe.dp.replica")
    throw ckpt::CheckpointError(fmt::format("{}: a '{}' checkpoint, not a data-parallel replica's", path, get("kind")));
  for (auto& [key, want] : m.identity())
    if (get(key) != want)
      throw ckpt::CheckpointError(
          fmt::format("{}: written with {} = {}, but this run has {} = {}", path, key, get(key), key, want));
  ckpt::restore(c, m.model, m.opt.get());  // checks every tensor before it changes anything
  m.step = std::stoll(get("step"));
  const std::int64_t used = std::stoll(get("batches_used"));
  if (used == 0 && m.step == 0)
    m.batcher.reset();  // the very start: next_batch makes epoch 0's batcher
  else
    m.seek(std::stoll(get("epoch")), used);
  return m.step;
}

}  // namespace troupe::dp

TROUPE_ACTOR(troupe::dp::Replica, setup, train, evaluate, evaluate_share, param_hash, steps_per_epoch, step, save, load, pid);
