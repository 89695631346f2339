// Checks operands (shapes, dtypes, one device) and sends each call to the
// host or device implementation.
#include "actors/compute/ops.hpp"

#include <algorithm>
#include <atomic>
#include <thread>

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/compute/half.hpp"
#include "actors/compute/hash.hpp"
#include "actors/compute/gpu_ops.hpp"
#include "actors/compute/ops_impl.hpp"
#include "actors/compute/parallel.hpp"

namespace troupe::compute {

namespace {

thread_local Stream* t_stream = nullptr;
std::atomic<int> g_threads{static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};  // in-process stages set it at once

// The device every defined operand lives on; a mix is an error naming the op.
Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!t->contiguous()) throw ShapeError(fmt::format("{}: operand {} is not contiguous", op, t->describe()));
    if (!first) {
      first = t;
    } else if (t->device() != first->device()) {
      throw ShapeError(fmt::format("{}: operands on different devices ({} and {})", op, first->describe(), t->describe()));
    }
  }
  Device d = first ? first->device() : Device::cpu();
  if (d.is_cuda()) gpu_ops().bind(d.index, t_stream);
  return d;
}

void same_shape(const char* op, const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape())
    throw ShapeError(fmt::format("{}: {} and {} differ in shape", op, a.describe(), b.describe()));
}

void want(const char* op, const char* name, const Tensor& t, const Shape& shape) {
  if (!t.defined() || t.shape() != shape)
    throw ShapeError(fmt::format("{}: {} should be {}, got {}", op, name, shape_str(shape), t.describe()));
}

void want2d(const char* op, const char* name, const Tensor& t) {
  if (!t.defined() || t.dim() != 2) throw ShapeError(fmt::format("{}: {} should be 2-D, got {}", op, name, t.describe()));
}

float* opt(const Tensor& t) { return t.defined() ? t.f32() : nullptr; }
void* raw_or_null(const Tensor& t) { return t.defined() ? t.raw() : nullptr; }

// True when `first` holds bf16 or fp16 elements: then every other defined
// operand must too, and they must be on a CUDA device (the host computes in
// float32 only).
bool half_operands(const char* op, const Tensor& first, std::initializer_list<const Tensor*> others) {
  if (!is_half(first.dtype())) return false;
  for (const Tensor* t : others)
    if (t->defined() && t->dtype() != first.dtype())
      throw ShapeError(fmt::format("{}: operands mix {} and {} ({} and {})", op, dtype_name(first.dtype()),
                                   dtype_name(t->dtype()), first.describe(), t->describe()));
  if (!first.device().is_cuda())
    throw ShapeError(fmt::format("{}: {} operands compute on a CUDA device only ({}); cast to f32 on the host", op,
                                 dtype_name(first.dtype()), first.describe()));
  return true;
}

}  // namespace

#define TROUPE_DISPATCH(dev, fn, ...) \
  ((dev).is_cuda() ? gpu_ops().fn(__VA_ARGS__) : impl::cpu::fn(__VA_ARGS__))

void set_stream(Stream* stream) noexcept { t_stream = stream; }
Stream* current_stream() noexcept { return t_stream; }

void set_num_threads(int n) {
  if (n < 0) throw UsageError(fmt::format("set_num_threads({}): the count cannot be negative", n));
  if (n == 0) n = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  g_threads = n;
  detail::set_pool_threads(n);
}

int num_threads() noexcept { return g_threads.load(); }

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y) {
  const char* op = "linear_forward";
  want2d(op, "x", x);
  want2d(op, "weight", w);
  const auto B = x.size(0), in = x.size(1), out = w.size(0);
  if (w.size(1) != in)
    throw ShapeError(fmt::format("{}: input {} does not fit weight {} (in features {})", op, x.describe(), w.describe(),
                                 w.size(1)));
  if (b.defined()) want(op, "bias", b, {out});
  want(op, "y", y, {B, out});
  auto d = common_device(op, {&x, &w, &b, &y});
  if (half_operands(op, x, {&w, &b, &y}))
    return gpu_ops().linear_forward_t(x.dtype(), x.raw(), w.raw(), raw_or_null(b), y.raw(), B, in, out);
  TROUPE_DISPATCH(d, linear_forward, x.f32(), w.f32(), opt(b), y.f32(), B, in, out);
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor& dx, Tensor& dw, Tensor& db,
                     bool accumulate) {
  const char* op = "linear_backward";
  want2d(op, "x", x);
  want2d(op, "weight", w);
  const auto B = x.size(0), in = x.size(1), out = w.size(0);
  want(op, "weight", w, {out, in});
  want(op, "dy", dy, {B, out});
  if (dx.defined()) want(op, "dx", dx, {B, in});
  if (dw.defined()) want(op, "dweight", dw, {out, in});
  if (db.defined()) want(op, "dbias", db, {out});
  auto d = common_device(op, {&x, &w, &dy, &dx, &dw, &db});
  if (half_operands(op, x, {&w, &dy, &dx, &dw, &db}))
    return gpu_ops().linear_backward_t(x.dtype(), x.raw(), w.raw(), dy.raw(), raw_or_null(dx), raw_or_null(dw),
                                           raw_or_null(db), B, in, out, accumulate);
  TROUPE_DISPATCH(d, linear_backward, x.f32(), w.f32(), dy.f32(), opt(dx), opt(dw), opt(db), B, in, out, accumulate);
}

void relu_forward(const Tensor& x, Tensor& y) {
  same_shape("relu_forward", x, y);
  auto d = common_device("relu_forward", {&x, &y});
  if (half_operands("relu_forward", x, {&y}))
    return gpu_ops().unary(impl::gpu::Unary::relu, x.dtype(), x.raw(), nullptr, y.raw(), x.numel());
  TROUPE_DISPATCH(d, relu_forward, x.f32(), y.f32(), x.numel());
}

void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  same_shape("relu_backward", y, dy);
  same_shape("relu_backward", dy, dx);
  auto d = common_device("relu_backward", {&y, &dy, &dx});
  if (half_operands("relu_backward", y, {&dy, &dx}))
    return gpu_ops().unary(impl::gpu::Unary::relu_backward, y.dtype(), y.raw(), dy.raw(), dx.raw(), y.numel());
  TROUPE_DISPATCH(d, relu_backward, y.f32(), dy.f32(), dx.f32(), y.numel());
}

void gelu_forward(const Tensor& x, Tensor& y) {
  same_shape("gelu_forward", x, y);
  auto d = common_device("gelu_forward", {&x, &y});
  if (half_operands("gelu_forward", x, {&y}))
    return gpu_ops().unary(impl::gpu::Unary::gelu, x.dtype(), x.raw(), nullptr, y.raw(), x.numel());
  TROUPE_DISPATCH(d, gelu_forward, x.f32(), y.f32(), x.numel());
}

void gelu_backward(const Tensor& x, const Tensor& dy, Tensor& dx) {
  same_shape("gelu_backward", x, dy);
  same_shape("gelu_backward", dy, dx);
  auto d = common_device("gelu_backward", {&x, &dy, &dx});
  if (half_operands("gelu_backward", x, {&dy, &dx}))
    return gpu_ops().unary(impl::gpu::Unary::gelu_backward, x.dtype(), x.raw(), dy.raw(), dx.raw(), x.numel());
  TROUPE_DISPATCH(d, gelu_backward, x.f32(), dy.f32(), dx.f32(), x.numel());
}

void dropout_forward(const Tensor& x, float p, std::uint64_t seed, Tensor& y, Tensor& mask) {
  if (!(p >= 0.0f && p < 1.0f)) throw UsageError(fmt::format("dropout probability {} is outside [0, 1)", p));
  same_shape("dropout_forward", x, y);
  same_shape("dropout_forward", x, mask);
  auto d = common_device("dropout_forward", {&x, &y, &mask});
  TROUPE_DISPATCH(d, dropout_forward, x.f32(), p, seed, y.f32(), mask.f32(), x.numel());
}

void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx) {
  same_shape("dropout_backward", dy, mask);
  same_shape("dropout_backward", dy, dx);
  auto d = common_device("dropout_backward", {&dy, &mask, &dx});
  TROUPE_DISPATCH(d, mul, dy.f32(), mask.f32(), dx.f32(), dy.numel());
}

void layernorm_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps, Tensor& y, Tensor& mean,
                       Tensor& rstd) {
  const char* op = "layernorm_forward";
  want2d(op, "x", x);
  const auto B = x.size(0), D = x.size(1);
  want(op, "gamma", gamma, {D});
  want(op, "beta", beta, {D});
  want(op, "y", y, {B, D});
  want(op, "mean", mean, {B});
  want(op, "rstd", rstd, {B});
  auto d = common_device(op, {&x, &gamma, &beta, &y, &mean, &rstd});
  TROUPE_DISPATCH(d, layernorm_forward, x.f32(), gamma.f32(), beta.f32(), eps, y.f32(), mean.f32(), rstd.f32(), B, D);
}

void layernorm_backward(const Tensor& x, const Tensor& gamma, const Tensor& mean, const Tensor& rstd, const Tensor& dy,
                        Tensor& dx, Tensor& dgamma, Tensor& dbeta, bool accumulate) {
  const char* op = "layernorm_backward";
  want2d(op, "x", x);
  const auto B = x.size(0), D = x.size(1);
  want(op, "gamma", gamma, {D});
  want(op, "mean", mean, {B});
  want(op, "rstd", rstd, {B});
  want(op, "dy", dy, {B, D});
  if (dx.defined()) want(op, "dx", dx, {B, D});
  if (dgamma.defined()) want(op, "dgamma", dgamma, {D});
  if (dbeta.defined()) want(op, "dbeta", dbeta, {D});
  auto d = common_device(op, {&x, &gamma, &mean, &rstd, &dy, &dx, &dgamma, &dbeta});
  TROUPE_DISPATCH(d, layernorm_backward, x.f32(), gamma.f32(), mean.f32(), rstd.f32(), dy.f32(), opt(dx), opt(dgamma),
                  opt(dbeta), B, D, accumulate);
}

void softmax_xent(const Tensor& logits, const Tensor& labels, Tensor& dlogits, Tensor& loss, Tensor& correct) {
  const char* op = "softmax_xent";
  want2d(op, "logits", logits);
  const auto B = logits.size(0), C = logits.size(1);
  if (!labels.defined() || labels.dtype() != DType::i32 || labels.shape() != Shape{B})
    throw ShapeError(fmt::format("{}: labels should be i32[{}], got {}", op, B, labels.describe()));
  if (dlogits.defined()) want(op, "dlogits", dlogits, {B, C});
  if (loss.defined()) want(op, "loss", loss, {1});
  if (correct.defined()) want(op, "correct", correct, {1});
  auto d = common_device(op, {&logits, &labels, &dlogits, &loss, &correct});
  if (half_operands(op, logits, {&dlogits}))
    return gpu_ops().softmax_xent_t(logits.dtype(), logits.raw(), labels.i32(), raw_or_null(dlogits), opt(loss),
                                   opt(correct), B, C);
  TROUPE_DISPATCH(d, softmax_xent, logits.f32(), labels.i32(), opt(dlogits), opt(loss), opt(correct), B, C);
}

void count_correct(const Tensor& logits, const Tensor& labels, Tensor& correct) {
  const char* op = "count_correct";
  want2d(op, "logits", logits);
  const auto B = logits.size(0), C = logits.size(1);
  if (!labels.defined() || labels.dtype() != DType::i32 || labels.shape() != Shape{B})
    throw ShapeError(fmt::format("{}: labels should be i32[{}], got {}", op, B, labels.describe()));
  want(op, "correct", correct, {1});
  auto d = common_device(op, {&logits, &labels, &correct});
  if (half_operands(op, logits, {}))
    return gpu_ops().count_correct_t(logits.dtype(), logits.raw(), labels.i32(), correct.f32(), B, C);
  TROUPE_DISPATCH(d, count_correct, logits.f32(), labels.i32(), correct.f32(), B, C);
}

void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buf, float lr, float momentum, float dampening,
                bool nesterov, float weight_decay, bool first_step) {
  same_shape("sgd_update", param, grad);
  if (momentum != 0.0f) same_shape("sgd_update", param, momentum_buf);
  auto d = common_device("sgd_update", {&param, &grad, &momentum_buf});
  TROUPE_DISPATCH(d, sgd_update, param.f32(), grad.f32(), opt(momentum_buf), param.numel(), lr, momentum, dampening,
                  nesterov, weight_decay, first_step);
}

void adamw_update(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, float lr, float beta1, float beta2,
                  float eps, float weight_decay, std::int64_t step) {
  same_shape("adamw_update", param, grad);
  same_shape("adamw_update", param, m);
  same_shape("adamw_update", param, v);
  if (step < 1) throw UsageError(fmt::format("adamw_update: step {} (steps count from 1)", step));
  auto d = common_device("adamw_update", {&param, &grad, &m, &v});
  TROUPE_DISPATCH(d, adamw_update, param.f32(), grad.f32(), m.f32(), v.f32(), param.numel(), lr, beta1, beta2, eps,
                  weight_decay, step);
}

void sum_squares(const Tensor& t, Tensor& out) {
  want("sum_squares", "out", out, {1});
  auto d = common_device("sum_squares", {&t, &out});
  TROUPE_DISPATCH(d, sum_squares, t.f32(), t.numel(), out.f32());
}

void scale_(Tensor& t, float factor) {
  auto d = common_device("scale_", {&t});
  TROUPE_DISPATCH(d, scale, t.f32(), t.numel(), factor);
}

void axpy_(Tensor& y, const Tensor& x, float alpha) {
  same_shape("axpy_", y, x);
  auto d = common_device("axpy_", {&y, &x});
  TROUPE_DISPATCH(d, axpy, y.f32(), x.f32(), y.numel(), alpha);
}

float hash_uniform(std::uint64_t seed, std::uint64_t i) noexcept { return detail::uniform01(seed, i); }

}  // namespace troupe::compute
