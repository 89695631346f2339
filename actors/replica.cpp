#include "actors/replica.hpp"

#include <chrono>
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

}  // namespace

struct Replica::Impl {
  ReplicaConfig cfg;
  compute::Device dev;     // where the model trains
  compute::DType dtype = compute::DType::f32;  // the input's, and so the activations'
  Tensor x_dev, y_dev;     // a GPU replica's batch, copied in each micro-batch
  Tensor x_half;           // the batch cast to a half dtype
  Tensor test_x, test_y;   // and its test set, copied in once (cast too)
  data::Dataset train_set, test;
  nn::Model model;
  std::unique_ptr<optim::Optimizer> opt;
  optim::LrSchedule schedule;
  std::shared_ptr<coll::Group> group;
  std::uint32_t rank = 0, world = 1;
  std::vector<Bucket> buckets;
  std::vector<std::vector<std::size_t>> buckets_of_layer;
  std::int64_t step = 0;
  std::unique_ptr<train::DataStream> data;  // this replica's position (made once its rank is known)
  nn::Tape tape;
  nn::CrossEntropy ce;

  train::DataStream& stream() {
    if (!data) data = std::make_unique<train::DataStream>(train_set, cfg, world, rank);
    return *data;
  }
  std::int64_t steps_per_epoch() { return stream().steps_per_epoch(); }

  // What a checkpoint must agree on to continue this run.
  std::map<std::string, std::string> identity() const {
    return {{"replicas", std::to_string(world)},
            {"batch", std::to_string(cfg.batch)},
            {"accumulation", std::to_string(cfg.accumulation)},
            {"model", train::model_text(cfg)},
            {"seed", std::to_string(cfg.seed)},
            {"train_examples", std::to_string(train_set.size())},
            {"optimizer", std::string(to_string(cfg.optimizer))}};
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

Replica::Replica(ReplicaConfig cfg) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  check_config(cfg, {.devices_here = true});
  m.cfg = cfg;
  m.dev = train::device_of(cfg.device);
  m.dtype = cfg.precision;
  compute::set_num_threads(cfg.threads);
  m.train_set = train::load_train(cfg);
  m.test = train::load_test(cfg);
  m.model = train::make_model(cfg);
  m.opt = train::make_optimizer(cfg);
  m.schedule = train::make_lr_schedule(cfg);
  if (m.dev.is_cuda()) m.model.to(m.dev);
}

Replica::~Replica() = default;

Task<std::int64_t> Replica::setup() {
  auto& m = *impl_;
  m.group = coll::group(m.cfg.group);
  m.rank = m.group->rank();
  m.world = m.group->size();
  m.data.reset();  // the position depends on the rank
  // Gradients live in the group's buffers, so the group's memory is the model's.
  const coll::Memory needed = m.dev.is_cuda() ? coll::Memory::cuda : coll::Memory::host;
  if (m.group->memory() != needed)
    throw UsageError(fmt::format("replica: the model is on {} but group '{}' has {} buffers (memory = {} is needed)",
                                 m.dev.str(), m.group->name(), m.group->memory(), needed));
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
    throw UsageError(fmt::format("replica: {} examples over {} replicas do not fill one step of {} x {}", m.train_set.size(),
                                 m.world, m.cfg.batch, m.cfg.accumulation));
  std::vector<StepStats> out;
  auto params = m.model.params();
  const std::function<void(std::size_t)> hook = [&m](std::size_t layer) { m.on_layer_ready(layer); };
  using clock = std::chrono::steady_clock;
  const auto ns = [](clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  };
  // Seconds since t; t moves to now. `troupe trace` gets the span as `phase`.
  auto since = [&ns](clock::time_point& t, const char* phase) {
    const auto now = clock::now();
    const double s = std::chrono::duration<double>(now - t).count();
    if (trace::on()) trace::span(trace::Kind::phase, phase, ns(t), ns(now));
    t = now;
    return s;
  };
  for (std::int64_t k = 0; k < n; ++k) {
    StepStats st;
    auto t = clock::now();
    const auto step_start = t;
    st.lr = m.schedule.at(m.step);
    m.opt->set_lr(st.lr);
    m.model.zero_grad();
    double loss = 0;
    for (int micro = 0; micro < m.cfg.accumulation; ++micro) {
      Tensor x, y;
      m.stream().next(x, y);
      st.epoch = m.stream().epoch();
      st.data_s += since(t, "data");
      const std::uint64_t seed = train::micro_seed(m.cfg, m.step, micro, m.rank);
      Tensor logits = m.model.forward(m.input(x), m.tape, {true, seed});
      Tensor d = m.ce.forward_backward(logits, m.on_device(y, m.y_dev));
      if (m.cfg.accumulation > 1) compute::scale_(d, 1.0f / static_cast<float>(m.cfg.accumulation));
      st.forward_s += since(t, "forward");
      const bool sync = micro == m.cfg.accumulation - 1 && m.world > 1;  // no-sync micro-batches before the last
      if (sync)
        for (auto& b : m.buckets) b.pending = b.layers.size();
      m.model.backward(d, m.tape, sync ? hook : std::function<void(std::size_t)>{});
      loss += m.ce.loss();
      st.samples += x.size(0);
      st.backward_s += since(t, "backward");
    }
    if (m.world > 1) {
      std::vector<Ref<void>> reduced;
      for (auto& b : m.buckets) reduced.push_back(b.reduced);
      co_await when_all(std::move(reduced));
    }
    st.wait_s = since(t, "allreduce wait");
    if (m.cfg.clip_norm > 0) optim::clip_grad_norm(params, m.cfg.clip_norm);
    m.opt->step(params);
    st.optimizer_s = since(t, "optimizer");
    st.step = ++m.step;
    note_step(st.step, st.data_s + st.forward_s + st.backward_s + st.optimizer_s, st.wait_s);
    if (trace::on()) trace::span(trace::Kind::step, "step", ns(step_start), ns(t), st.step);
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

std::uint64_t Replica::param_hash() { return train::param_hash(impl_->model.params()); }

std::int64_t Replica::steps_per_epoch() { return impl_->steps_per_epoch(); }
std::int64_t Replica::step() const { return impl_->step; }
int Replica::pid() const { return static_cast<int>(::getpid()); }

std::int64_t Replica::save(std::string path) {
  auto& m = *impl_;
  auto meta = m.identity();
  meta["kind"] = "troupe.dp.replica";
  meta["step"] = std::to_string(m.step);
  meta["epoch"] = std::to_string(m.stream().epoch());
  meta["batches_used"] = std::to_string(m.stream().used());
  ckpt::save(path, ckpt::snapshot(m.model, m.opt.get(), meta));
  return m.step;
}

std::int64_t Replica::load(std::string path) {
  auto& m = *impl_;
  if (!m.group) throw UsageError("replica: load() before setup()");
  const ckpt::Checkpoint c = ckpt::load(path);
  const std::string what = "a data-parallel replica";
  c.check("troupe.dp.replica", m.identity(), path, what);
  auto get = [&](const std::string& key) { return c.require(key, path, what); };
  ckpt::restore(c, m.model, m.opt.get());  // checks every tensor before it changes anything
  m.step = std::stoll(get("step"));
  m.stream().seek(std::stoll(get("epoch")), std::stoll(get("batches_used")));
  return m.step;
}

}  // namespace troupe::dp

TROUPE_ACTOR(troupe::dp::Replica, setup, train, evaluate, evaluate_share, param_hash, steps_per_epoch, step, save, load, pid);
