// A stage actor's step: its instruction list of the schedule run once per
// optimizer step; and the pipelined evaluation (pipeline_stage.cpp has the
// rest of the actor).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "actors/compute/ops.hpp"
#include "runtime/when.hpp"
#include "trainers/detail/stage_impl.hpp"

namespace troupe::pipeline {

using namespace stage_detail;

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
    // Clips the gradients by the norm over the whole model, as one process
    // does (optim::clip_grad_norm): the running sum of squares goes along the
    // model stages in order, so the same float gathers every parameter in the
    // same order; the last model stage's actor then gives it to all.
    auto clip = [&]() -> Task<void> {
      Tensor total = Tensor::zeros({1}, compute::DType::f32, m.dev);
      const int S = m.lay.S();
      for (int c = 0; c < v; ++c) {
        const int s = m.model_stage(c);
        if (m.lay.remote(s, -1)) co_await m.pp->recv(view(total), m.actor_of(s - 1), kTagEval);
        auto params = m.chunks[static_cast<std::size_t>(c)].params();
        const auto& split = m.split[static_cast<std::size_t>(c)];
        if (m.tpg) {
          // 3-D: the split parameters' squares summed over the tp ranks (each
          // holds a part), then the whole ones (every rank holds the same).
          Tensor part = Tensor::zeros({1}, compute::DType::f32, m.dev);
          for (std::size_t i = 0; i < params.size(); ++i)
            if (split[i] && params[i]->grad_valid) compute::sum_squares(params[i]->grad, part);
          co_await m.tpg->allreduce(view(part));
          compute::axpy_(total, part, 1.0f);
        }
        for (std::size_t i = 0; i < params.size(); ++i)
          if (!(m.tpg && split[i]) && params[i]->grad_valid) compute::sum_squares(params[i]->grad, total);
        if (m.lay.remote(s, +1)) co_await m.pp->send(cview(total), m.actor_of(s + 1), kTagEval);
      }
      if (m.pp->size() > 1) co_await m.pp->broadcast(view(total), m.actor_of(S - 1));
      const float factor = optim::clip_factor(std::sqrt(total.item()), m.cfg.train.clip_norm);
      if (factor < 1.0f)
        for (auto* p : all_params)
          if (p->grad_valid) compute::scale_(p->grad, factor);
    };
    // Prepares transfer a into `b`; `slot` is where its completion goes.
    auto add = [&](const Action& a, coll::Group::Batch& b) -> Ref<void>* {
      const int c = a.chunk, mb = a.mb, s = m.model_stage(c);
      const std::size_t i = idx(c, mb);
      const auto B = m.cfg.train.batch;
      switch (a.op) {
        case Op::RECV_F:
          x_in[i] = Tensor::empty({B, m.chunk_width[static_cast<std::size_t>(c)].first}, compute::DType::f32, m.dev);
          b.recv(view(x_in[i]), m.actor_of(s - 1), kTagAct);
          return &recv_f[i];
        case Op::RECV_B:
          dy[i] = Tensor::empty({B, m.chunk_width[static_cast<std::size_t>(c)].second}, compute::DType::f32, m.dev);
          b.recv(view(dy[i]), m.actor_of(s + 1), kTagGrad);
          return &recv_b[i];
        case Op::SEND_F:
          b.send(cview(act_out[i]), m.actor_of(s + 1), kTagAct);
          return &send_f[i];
        default:  // SEND_B
          b.send(cview(dx_out[i]), m.actor_of(s - 1), kTagGrad);
          return nullptr;
      }
    };
    std::size_t next_group = 0;
    std::vector<Ref<void>*> slots;  // where each posted transfer's completion goes
    for (std::size_t ai = 0; ai < m.actions.size(); ++ai) {
      const Action& a = m.actions[ai];
      const int c = a.chunk, mb = a.mb, s = a.mb >= 0 || a.op == Op::REDUCE_GRAD ? m.model_stage(a.chunk) : 0;
      const std::size_t i = mb >= 0 ? idx(c, mb) : 0;
      switch (a.op) {
        case Op::RECV_F:
        case Op::RECV_B:
        case Op::SEND_F:
        case Op::SEND_B: {
          // The transfers posted together from here (comm_groups).
          const auto& members = m.comm_groups.at(next_group++);
          coll::Group::Batch b;
          slots.clear();
          bool sends = false;
          for (std::size_t j : members) {
            slots.push_back(add(m.actions[j], b));
            sends = sends || m.actions[j].op == Op::SEND_F || m.actions[j].op == Op::SEND_B;
          }
          Ref<void> done = m.pp->batch(std::move(b));
          for (auto* slot : slots)
            if (slot) *slot = done;
          if (sends) pending.push_back(done);
          ai += members.size() - 1;
          break;
        }
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
          if (m.cfg.train.clip_norm > 0) co_await clip();
          m.opt->step(all_params);
          busy += (now_us() - t1) / 1e6;
          m.record("STEP", -1, 0, t1, now_us());
          break;
        }
      }
    }
    if (!pending.empty()) co_await when_all(std::move(pending));
    st.step = ++m.step;
    m.to_trace(trace::Kind::step, "step", t_step, now_us(), st.step);
    st.loss = m.needs_y() ? static_cast<float>(loss / M) : 0.0f;
    st.samples = m.needs_x() && m.t == 0 ? static_cast<std::int64_t>(M) * m.cfg.train.batch : 0;  // tp ranks share them
    st.busy_s = busy;
    st.wall_s = (now_us() - t_step) / 1e6;
    note_step(st.step, st.busy_s, std::max(0.0, st.wall_s - st.busy_s));
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
        if (m.t == 0) {  // every tp rank has the whole output: one counts
          loss += static_cast<double>(ce.loss()) * static_cast<double>(b);
          e.correct += static_cast<std::int64_t>(ce.correct());
          e.total += b;
        }
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

}  // namespace troupe::pipeline
