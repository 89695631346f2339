// A pipeline stage actor: runs its instruction list of the schedule every
// optimizer step (see pipeline.hpp).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actors/ckpt/checkpoint.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/stream.hpp"
#include "actors/nn/layers.hpp"
#include "actors/nn/loss.hpp"
#include "runtime/coll/group.hpp"
#include "runtime/when.hpp"
#include "trainers/detail/schedule_layout.hpp"
#include "trainers/pipeline.hpp"

namespace troupe::pipeline {

using compute::Tensor;

namespace {

constexpr std::uint32_t kTagAct = 0, kTagGrad = 1, kTagEval = 2, kTagShape = 3;
constexpr std::size_t kMaxSpans = 200000;

double now_us() {
  using namespace std::chrono;
  return static_cast<double>(duration_cast<microseconds>(system_clock::now().time_since_epoch()).count());
}

std::span<const float> cview(const Tensor& t) { return {t.f32(), static_cast<std::size_t>(t.numel())}; }
std::span<float> view(Tensor& t) { return {t.f32(), static_cast<std::size_t>(t.numel())}; }

// The widths a chunk takes and gives (its first and last linear layers).
std::pair<std::int64_t, std::int64_t> widths(nn::Model& m) {
  std::int64_t in = -1, out = -1;
  for (std::size_t i = 0; i < m.size(); ++i)
    if (auto* l = dynamic_cast<nn::Linear*>(&m.layer(i))) {
      if (in < 0) in = l->in_features();
      out = l->out_features();
    }
  return {in, out};
}

}  // namespace

struct Stage::Impl {
  StageConfig cfg;
  detail::Layout lay{1, 1};
  compute::Device dev;
  std::vector<Action> actions;  // this actor's list
  std::uint32_t r = 0, d = 0;   // stage (pp rank) and replica (dp rank)
  std::shared_ptr<coll::Group> pp, dpg;
  nn::Model whole;                 // built from the seed, sliced at setup
  std::vector<nn::Model> chunks;   // chunk c = model stage c*K + r
  std::vector<std::pair<std::int64_t, std::int64_t>> chunk_width;  // (in, out) per chunk
  std::vector<std::span<float>> grad_bufs;  // hybrid: each chunk's gradients in the dp group's buffer
  std::unique_ptr<optim::Optimizer> opt;
  optim::LrSchedule lr;
  data::Dataset train_set, test_set;
  std::unique_ptr<train::DataStream> stream;
  std::int64_t step = 0;
  nn::CrossEntropy ce;
  std::vector<std::unique_ptr<nn::Tape>> free_tapes;
  std::deque<StageSpan> spans;
  bool ready = false;

  int M() const { return cfg.train.accumulation; }
  int model_stage(int c) const { return lay.stage(static_cast<int>(r), c); }
  bool first(int c) const { return model_stage(c) == 0; }
  bool last(int c) const { return model_stage(c) == lay.S() - 1; }
  bool needs_x() const {
    for (int c = 0; c < lay.v; ++c)
      if (first(c)) return true;
    return false;
  }
  bool needs_y() const {
    for (int c = 0; c < lay.v; ++c)
      if (last(c)) return true;
    return false;
  }
  std::uint32_t actor_of(int s) const { return static_cast<std::uint32_t>(lay.place(s).actor); }

  std::vector<nn::Param*> params() {
    std::vector<nn::Param*> out;
    for (auto& m : chunks)
      for (auto* p : m.params()) out.push_back(p);
    return out;
  }
  std::unique_ptr<nn::Tape> take_tape() {
    if (free_tapes.empty()) return std::make_unique<nn::Tape>();
    auto t = std::move(free_tapes.back());
    free_tapes.pop_back();
    return t;
  }
  void record(const char* what, int mb, int chunk, double t0, double t1) {
    if (spans.size() >= kMaxSpans) spans.pop_front();
    spans.push_back(StageSpan{what, mb, chunk, step, t0, t1});
  }
  std::map<std::string, std::string> identity() const {
    return {{"stages", std::to_string(lay.K)},
            {"virtual_stages", std::to_string(lay.v)},
            {"replicas", std::to_string(cfg.replicas)},
            {"stage", std::to_string(r)},
            {"blocks", fmt::format("{}", fmt::join(cfg.block_bounds, ","))},
            {"microbatches", std::to_string(M())},
            {"batch", std::to_string(cfg.train.batch)},
            {"seed", std::to_string(cfg.train.seed)},
            {"train_examples", std::to_string(train_set.size())},
            {"optimizer", cfg.train.optimizer}};
  }
};

Stage::Stage(StageConfig cfg) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  train::check_config(cfg.train, {.devices_here = true});
  if (cfg.stages < 1 || cfg.virtual_stages < 1 || cfg.replicas < 1)
    throw UsageError(fmt::format("pipeline stage: stages {}, virtual_stages {} and replicas {} must be at least 1",
                                 cfg.stages, cfg.virtual_stages, cfg.replicas));
  const auto S = static_cast<std::size_t>(cfg.stages * cfg.virtual_stages);
  if (cfg.bounds.size() != S + 1)
    throw UsageError(fmt::format("pipeline stage: {} layer bounds for {} model stages (expected {})", cfg.bounds.size(), S,
                                 S + 1));
  m.cfg = std::move(cfg);
  m.lay = detail::Layout{m.cfg.stages, m.cfg.virtual_stages};
  m.dev = train::device_of(m.cfg.train.device);
  compute::set_num_threads(m.cfg.train.threads);
  m.train_set = train::load_train(m.cfg.train);
  m.test_set = train::load_test(m.cfg.train);
  m.whole = train::make_model(m.cfg.train);
  if (m.cfg.bounds.front() != 0 || m.cfg.bounds.back() != static_cast<std::int64_t>(m.whole.size()) ||
      !std::is_sorted(m.cfg.bounds.begin(), m.cfg.bounds.end()) ||
      std::adjacent_find(m.cfg.bounds.begin(), m.cfg.bounds.end()) != m.cfg.bounds.end())
    throw UsageError(fmt::format("pipeline stage: layer bounds {} do not cut the model's {} layers into non-empty stages",
                                 fmt::join(m.cfg.bounds, ","), m.whole.size()));
  m.opt = train::make_optimizer(m.cfg.train);
  m.lr = train::make_lr_schedule(m.cfg.train);
}

Stage::~Stage() = default;

Task<std::string> Stage::setup() {
  auto& m = *impl_;
  m.pp = coll::group("pp");
  m.r = m.pp->rank();
  if (m.pp->size() != static_cast<std::uint32_t>(m.lay.K))
    throw UsageError(fmt::format("pipeline stage: group 'pp' has {} members but the pipeline has {} stages",
                                 m.pp->size(), m.lay.K));
  m.d = 0;
  m.dpg.reset();
  if (m.cfg.replicas > 1) {
    m.dpg = coll::group("pp_dp");
    m.d = m.dpg->rank();
  }
  const std::vector<Action> all_actions = parse(m.cfg.schedule).actions.at(m.r);
  m.actions = all_actions;
  m.stream = std::make_unique<train::DataStream>(m.train_set, m.cfg.train, static_cast<std::uint32_t>(m.cfg.replicas), m.d);
  // Take this actor's chunks (fresh from the seed: a rebuilt stage restores a checkpoint next).
  m.whole = train::make_model(m.cfg.train);
  m.chunks.clear();
  m.chunk_width.clear();
  std::string held;
  for (int c = 0; c < m.lay.v; ++c) {
    const int s = m.model_stage(c);
    const auto b = static_cast<std::size_t>(m.cfg.bounds[static_cast<std::size_t>(s)]);
    const auto e = static_cast<std::size_t>(m.cfg.bounds[static_cast<std::size_t>(s) + 1]);
    m.chunks.push_back(m.whole.slice(b, e));
    if (m.dev.is_cuda()) m.chunks.back().to(m.dev);
    m.chunk_width.push_back(widths(m.chunks.back()));
    held += fmt::format("{}model stage {} = blocks [{}, {}) (layers [{}, {}), {} parameters)", c ? "; " : "", s,
                        m.cfg.block_bounds.at(static_cast<std::size_t>(s)),
                        m.cfg.block_bounds.at(static_cast<std::size_t>(s) + 1), b, e, m.chunks.back().num_params());
  }
  m.whole = nn::Model();
  m.opt = train::make_optimizer(m.cfg.train);
  m.step = 0;
  // Hybrid: each chunk's gradients live in the gradient group's buffer, so
  // REDUCE_GRAD all-reduces them in place.
  m.grad_bufs.clear();
  if (m.dpg) {
    for (auto& ch : m.chunks) {
      std::int64_t n = 0;
      for (auto* p : ch.params()) n += p->value.numel();
      auto buf = co_await m.dpg->alloc<float>(static_cast<std::size_t>(n));
      std::int64_t off = 0;
      for (auto* p : ch.params()) {
        p->grad = Tensor::wrap(buf.data() + off, p->value.shape(), m.dev, m.dpg);
        p->grad.zero();
        p->grad_valid = false;
        off += p->value.numel();
      }
      m.grad_bufs.push_back(buf);
    }
  }
  if (m.lr.total_steps == 0) m.lr.total_steps = m.cfg.train.epochs * m.stream->steps_per_epoch();
  // Neighbours agree on what passes between them before anything trains:
  // (features, dtype) from the giving stage to the taking one.
  const auto dtype_code = static_cast<std::int64_t>(compute::DType::f32);
  std::vector<std::vector<std::int64_t>> gives, takes;
  gives.reserve(static_cast<std::size_t>(m.lay.v));  // the batch holds spans into them
  takes.reserve(static_cast<std::size_t>(m.lay.v));
  coll::Group::Batch shapes;
  std::vector<int> taking_chunks;
  for (int c = 0; c < m.lay.v; ++c) {
    const int s = m.model_stage(c);
    if (m.lay.remote(s, +1)) {
      gives.push_back({s, m.chunk_width[static_cast<std::size_t>(c)].second, dtype_code});
      shapes.send(std::span<const std::int64_t>(gives.back()), m.actor_of(s + 1), kTagShape);
    }
  }
  for (int c = 0; c < m.lay.v; ++c) {
    const int s = m.model_stage(c);
    if (m.lay.remote(s, -1)) {
      takes.push_back(std::vector<std::int64_t>(3));
      taking_chunks.push_back(c);
      shapes.recv(std::span<std::int64_t>(takes.back()), m.actor_of(s - 1), kTagShape);
    }
  }
  if (!shapes.empty()) co_await m.pp->batch(std::move(shapes));
  for (std::size_t i = 0; i < takes.size(); ++i) {
    const int c = taking_chunks[i];
    const int s = m.model_stage(c);
    const auto want = m.chunk_width[static_cast<std::size_t>(c)].first;
    if (takes[i][0] != s - 1 || takes[i][1] != want || takes[i][2] != dtype_code)
      throw UsageError(fmt::format(
          "pipeline: stage {} (model stage {}) takes {} features of {} from model stage {}, but stage {} (model stage "
          "{}) gives {} features of {}: the two stages were built from different models or splits",
          m.r, s, want, compute::dtype_name(compute::DType::f32), s - 1, m.actor_of(s - 1), takes[i][0], takes[i][1],
          compute::dtype_name(static_cast<compute::DType>(takes[i][2]))));
  }
  m.ready = true;
  co_return fmt::format("stage {}: {}", m.r, held);
}

void Stage::fail_groups(std::exception_ptr e) {
  auto& m = *impl_;
  std::string what = "unknown error";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
  }
  const std::string why = fmt::format("stage {} of pipeline replica {} failed: {}", m.r, m.d, what);
  if (m.pp) m.pp->abort(why);
  if (m.dpg) m.dpg->abort(why);
}

Task<std::vector<train::StepStats>> Stage::train(std::int64_t n) {
  std::exception_ptr e;
  try {
    co_return co_await run_steps(n);
  } catch (...) {
    e = std::current_exception();
  }
  fail_groups(e);
  std::rethrow_exception(e);
}

Task<train::EvalStats> Stage::evaluate(std::int64_t limit) {
  std::exception_ptr e;
  try {
    co_return co_await run_eval(limit);
  } catch (...) {
    e = std::current_exception();
  }
  fail_groups(e);
  std::rethrow_exception(e);
}

Task<std::vector<train::StepStats>> Stage::run_steps(std::int64_t n) {
  auto& m = *impl_;
  if (!m.ready) throw UsageError("pipeline stage: train() before setup()");
  if (m.stream->steps_per_epoch() == 0)
    throw UsageError(fmt::format("pipeline: {} examples over {} replicas do not fill one step of {} micro-batches of {}",
                                 m.train_set.size(), m.cfg.replicas, m.M(), m.cfg.train.batch));
  const int M = m.M(), v = m.lay.v;
  const auto idx = [M](int c, int mb) { return static_cast<std::size_t>(c * M + mb); };
  std::vector<train::StepStats> out;
  auto all_params = m.params();
  for (std::int64_t k = 0; k < n; ++k) {
    const double t_step = now_us();
    train::StepStats st;
    st.lr = m.lr.at(m.step);
    m.opt->set_lr(st.lr);
    for (auto& ch : m.chunks) ch.zero_grad();
    // This step's micro-batches, for the stages that read data.
    std::vector<Tensor> xs(static_cast<std::size_t>(M)), ys(static_cast<std::size_t>(M));
    if (m.needs_x() || m.needs_y()) {
      for (int mb = 0; mb < M; ++mb) {
        Tensor x, y;
        m.stream->next(x, y);
        if (m.needs_x()) xs[static_cast<std::size_t>(mb)] = m.dev.is_cuda() ? x.to(m.dev) : x.clone();
        if (m.needs_y()) ys[static_cast<std::size_t>(mb)] = m.dev.is_cuda() ? y.to(m.dev) : y.clone();
      }
    }
    st.epoch = m.stream->epoch();
    const auto cells = static_cast<std::size_t>(v * M);
    std::vector<Tensor> x_in(cells), act_out(cells), dy(cells), dx_out(cells);
    std::vector<std::unique_ptr<nn::Tape>> tapes(cells);
    std::vector<Ref<void>> recv_f(cells), recv_b(cells), send_f(cells);
    std::vector<Ref<void>> pending;  // sends and reductions, waited for before the update
    std::int64_t live = 0, peak = 0;
    double busy = 0, loss = 0;
    auto release = [&](std::size_t i) -> Task<void> {
      if (send_f[i].valid() && !send_f[i].ready()) co_await send_f[i];
      m.free_tapes.push_back(std::move(tapes[i]));
      x_in[i] = Tensor();
      dy[i] = Tensor();
      --live;
    };
    auto wait_for = [&](Ref<void>& ref, const char* what, int mb, int c) -> Task<void> {
      if (!ref.valid()) co_return;
      const double t0 = now_us();
      if (!ref.ready()) {
        co_await ref;
        m.record(what, mb, c, t0, now_us());
      } else {
        co_await ref;
      }
      ref = Ref<void>();
    };
    for (const Action& a : m.actions) {
      const int c = a.chunk, mb = a.mb, s = a.mb >= 0 || a.op == Op::REDUCE_GRAD ? m.model_stage(a.chunk) : 0;
      const std::size_t i = mb >= 0 ? idx(c, mb) : 0;
      const auto B = m.cfg.train.batch;
      switch (a.op) {
        case Op::RECV_F:
          x_in[i] = Tensor::empty({B, m.chunk_width[static_cast<std::size_t>(c)].first}, compute::DType::f32, m.dev);
          recv_f[i] = m.pp->recv(view(x_in[i]), m.actor_of(s - 1), kTagAct);
          break;
        case Op::RECV_B:
          dy[i] = Tensor::empty({B, m.chunk_width[static_cast<std::size_t>(c)].second}, compute::DType::f32, m.dev);
          recv_b[i] = m.pp->recv(view(dy[i]), m.actor_of(s + 1), kTagGrad);
          break;
        case Op::SEND_F:
          send_f[i] = m.pp->send(cview(act_out[i]), m.actor_of(s + 1), kTagAct);
          pending.push_back(send_f[i]);
          break;
        case Op::SEND_B:
          pending.push_back(m.pp->send(cview(dx_out[i]), m.actor_of(s - 1), kTagGrad));
          break;
        case Op::F: {
          if (s == 0)
            x_in[i] = xs[static_cast<std::size_t>(mb)];
          else if (!m.lay.remote(s, -1))
            x_in[i] = act_out[idx(c - 1, mb)];  // the previous model stage is this actor's chunk c - 1
          else
            co_await wait_for(recv_f[i], "RECV_F", mb, c);
          if (!x_in[i].defined())
            throw Error(fmt::format("pipeline: stage {} runs F{}@{} without its input", m.r, mb, c));
          tapes[i] = m.take_tape();
          peak = std::max(peak, ++live);
          const double t0 = now_us();
          Tensor y = m.chunks[static_cast<std::size_t>(c)].forward(
              x_in[i], *tapes[i], {true, train::micro_seed(m.cfg.train, m.step, mb, m.d)});
          if (m.last(c)) {
            Tensor g = m.ce.forward_backward(y, ys[static_cast<std::size_t>(mb)]).clone();
            if (M > 1) compute::scale_(g, 1.0f / static_cast<float>(M));
            dy[i] = g;
            loss += m.ce.loss();
          } else {
            act_out[i] = y.clone();  // the tape's buffer is reused by later passes
          }
          const double t1 = now_us();
          busy += (t1 - t0) / 1e6;
          m.record("F", mb, c, t0, t1);
          break;
        }
        case Op::B:
        case Op::I: {
          if (!m.last(c)) {
            if (!m.lay.remote(s, +1))
              dy[i] = dx_out[idx(c + 1, mb)];  // the next model stage is this actor's chunk c + 1
            else
              co_await wait_for(recv_b[i], "RECV_B", mb, c);
          }
          if (!dy[i].defined() || !tapes[i])
            throw Error(fmt::format("pipeline: stage {} runs {}{}@{} without its gradient or forward pass", m.r,
                                    op_name(a.op), mb, c));
          const double t0 = now_us();
          auto& chunk = m.chunks[static_cast<std::size_t>(c)];
          Tensor dx = a.op == Op::B ? chunk.backward(dy[i], *tapes[i], {}, s > 0)
                                    : chunk.backward_input(dy[i], *tapes[i], s > 0);
          if (s > 0) dx_out[i] = dx.clone();
          const double t1 = now_us();
          busy += (t1 - t0) / 1e6;
          m.record(op_name(a.op), mb, c, t0, t1);
          if (a.op == Op::B) co_await release(i);
          break;
        }
        case Op::W: {
          if (!tapes[i]) throw Error(fmt::format("pipeline: stage {} runs W{}@{} before its forward pass", m.r, mb, c));
          const double t0 = now_us();
          m.chunks[static_cast<std::size_t>(c)].backward_weight(*tapes[i]);
          const double t1 = now_us();
          busy += (t1 - t0) / 1e6;
          m.record("W", mb, c, t0, t1);
          co_await release(i);
          break;
        }
        case Op::REDUCE_GRAD:
          if (m.dpg) {
            const double t0 = now_us();
            pending.push_back(m.dpg->allreduce(m.grad_bufs.at(static_cast<std::size_t>(c)), coll::Op::avg));
            m.record("REDUCE_GRAD", -1, c, t0, t0);
          }
          break;
        case Op::STEP: {
          const double t0 = now_us();
          co_await when_all(std::move(pending));
          pending.clear();
          m.record("drain", -1, 0, t0, now_us());
          const double t1 = now_us();
          m.opt->step(all_params);
          busy += (now_us() - t1) / 1e6;
          m.record("STEP", -1, 0, t1, now_us());
          break;
        }
      }
    }
    if (!pending.empty()) co_await when_all(std::move(pending));
    st.step = ++m.step;
    st.loss = m.needs_y() ? static_cast<float>(loss / M) : 0.0f;
    st.samples = m.needs_x() ? static_cast<std::int64_t>(M) * m.cfg.train.batch : 0;
    st.busy_s = busy;
    st.wall_s = (now_us() - t_step) / 1e6;
    st.peak_live = peak;
    out.push_back(st);
  }
  co_return out;
}

Task<train::EvalStats> Stage::run_eval(std::int64_t limit) {
  auto& m = *impl_;
  if (!m.ready) throw UsageError("pipeline stage: evaluate() before setup()");
  const std::int64_t n = limit > 0 ? std::min(limit, m.test_set.size()) : m.test_set.size();
  const auto D = static_cast<std::int64_t>(m.cfg.replicas), d = static_cast<std::int64_t>(m.d);
  const std::int64_t from = n * d / D, to = n * (d + 1) / D;
  train::EvalStats e;
  double loss = 0;
  std::vector<nn::Tape> tapes(static_cast<std::size_t>(m.lay.v));
  std::vector<Tensor> outs(static_cast<std::size_t>(m.lay.v));
  std::vector<Ref<void>> sends(static_cast<std::size_t>(m.lay.v));
  nn::CrossEntropy ce;
  // Batch by batch, chunk by chunk: every dependency points to an earlier
  // (batch, model stage), so the stages cannot wait on each other in a circle.
  for (std::int64_t at = from; at < to; at += 1000) {
    const std::int64_t b = std::min<std::int64_t>(1000, to - at);
    for (int c = 0; c < m.lay.v; ++c) {
      const int s = m.model_stage(c);
      const auto ci = static_cast<std::size_t>(c);
      Tensor x;
      if (s == 0) {
        x = m.test_set.images.narrow(at, b);
        if (m.dev.is_cuda()) x = x.to(m.dev);
      } else if (!m.lay.remote(s, -1)) {
        x = outs[ci - 1];
      } else {
        x = Tensor::empty({b, m.chunk_width[ci].first}, compute::DType::f32, m.dev);
        co_await m.pp->recv(view(x), m.actor_of(s - 1), kTagEval);
      }
      if (sends[ci].valid()) co_await sends[ci];  // the last batch's output has left
      Tensor y = m.chunks[ci].forward(x, tapes[ci], {false, 0});
      if (m.last(c)) {
        Tensor labels = m.test_set.labels.narrow(at, b);
        if (m.dev.is_cuda()) labels = labels.to(m.dev);
        ce.forward_backward(y, labels);
        loss += static_cast<double>(ce.loss()) * static_cast<double>(b);
        e.correct += static_cast<std::int64_t>(ce.correct());
        e.total += b;
      } else {
        outs[ci] = y.clone();
        if (m.lay.remote(s, +1)) sends[ci] = m.pp->send(cview(outs[ci]), m.actor_of(s + 1), kTagEval);
      }
    }
  }
  for (auto& s : sends)
    if (s.valid()) co_await s;
  e.loss = e.total ? static_cast<float>(loss / static_cast<double>(e.total)) : 0.0f;
  co_return e;
}

std::int64_t Stage::steps_per_epoch() {
  auto& m = *impl_;
  return train::DataStream(m.train_set, m.cfg.train, static_cast<std::uint32_t>(m.cfg.replicas), 0).steps_per_epoch();
}

std::vector<NamedValues> Stage::parameters() {
  std::vector<NamedValues> out;
  for (auto* p : impl_->params()) out.push_back({p->name, p->value.to_vector()});
  return out;
}

std::uint64_t Stage::param_hash() { return train::param_hash(impl_->params()); }

std::int64_t Stage::save(std::string path) {
  auto& m = *impl_;
  if (!m.ready) throw UsageError("pipeline stage: save() before setup()");
  auto meta = m.identity();
  meta["kind"] = "troupe.pipeline.stage";
  meta["step"] = std::to_string(m.step);
  meta["epoch"] = std::to_string(m.stream->epoch());
  meta["batches_used"] = std::to_string(m.stream->used());
  ckpt::save(path, ckpt::snapshot(m.params(), m.opt.get(), meta));
  return m.step;
}

std::int64_t Stage::load(std::string path) {
  auto& m = *impl_;
  if (!m.ready) throw UsageError("pipeline stage: load() before setup()");
  const ckpt::Checkpoint c = ckpt::load(path);
  auto get = [&](const std::string& key) {
    auto it = c.meta.find(key);
    if (it == c.meta.end()) throw ckpt::CheckpointError(fmt::format("{}: not a pipeline stage's checkpoint (no '{}')", path, key));
    return it->second;
  };
  if (get("kind") != "troupe.pipeline.stage")
    throw ckpt::CheckpointError(fmt::format("{}: a '{}' checkpoint, not a pipeline stage's", path, get("kind")));
  for (auto& [key, want] : m.identity())
    if (get(key) != want)
      throw ckpt::CheckpointError(
          fmt::format("{}: written with {} = {}, but this run has {} = {}", path, key, get(key), key, want));
  ckpt::restore(c, m.params(), m.dev, m.opt.get());
  m.step = std::stoll(get("step"));
  m.stream->seek(std::stoll(get("epoch")), std::stoll(get("batches_used")));
  return m.step;
}

std::vector<StageSpan> Stage::timeline() {
  auto& m = *impl_;
  std::vector<StageSpan> out(m.spans.begin(), m.spans.end());
  m.spans.clear();
  return out;
}

int Stage::pid() const { return static_cast<int>(::getpid()); }

}  // namespace troupe::pipeline

TROUPE_ACTOR(troupe::pipeline::Stage, setup, train, evaluate, steps_per_epoch, parameters, param_hash, save, load,
             timeline, pid);
