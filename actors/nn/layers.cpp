#include "actors/nn/layers.hpp"

#include <cmath>

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/compute/half.hpp"
#include "actors/compute/ops.hpp"

namespace troupe::nn {

namespace ops = troupe::compute;

Tensor& reuse(Tensor& slot, const Shape& shape, Device dev, compute::DType dtype) {
  if (!slot.defined() || slot.shape() != shape || slot.device() != dev || slot.dtype() != dtype)
    slot = Tensor::empty(shape, dtype, dev);
  return slot;
}

std::uint64_t Rng::next() {
  std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

float Rng::uniform(float lo, float hi) {
  const float u = static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
  return lo + (hi - lo) * u;
}

namespace {

void need_2d(const char* layer, const Tensor& x, std::int64_t features) {
  if (x.dim() != 2 || (features >= 0 && x.size(1) != features))
    throw compute::ShapeError(fmt::format("{} wants input [batch, {}], got {}", layer,
                                          features >= 0 ? std::to_string(features) : std::string("features"),
                                          x.describe()));
}

Tensor& grad_in(Saved& s, const Tensor& like) { return reuse(s.grad_in, like.shape(), like.device(), like.dtype()); }

// Layers without half-precision kernels say so, naming the input.
void need_f32(const char* layer, const Tensor& x) {
  if (x.dtype() != compute::DType::f32)
    throw compute::ShapeError(fmt::format("{} takes float32 input, got {} (half-precision models use linear layers "
                                          "and activations only)",
                                          layer, x.describe()));
}

// Half-precision slots of a Linear layer's Saved::t, after the input at 0.
enum HalfSlot : std::size_t { kHalfWeight = 1, kHalfBias, kHalfDWeight, kHalfDBias, kHalfSlots };

}  // namespace

Linear::Linear(std::int64_t in, std::int64_t out, bool bias, std::uint64_t seed) : in_(in), out_(out) {
  if (in <= 0 || out <= 0) throw UsageError(fmt::format("Linear({}, {}): feature counts must be positive", in, out));
  Rng rng(seed);
  const float bound = 1.0f / std::sqrt(static_cast<float>(in));
  std::vector<float> w(static_cast<std::size_t>(in * out));
  for (auto& v : w) v = rng.uniform(-bound, bound);
  w_ = {"weight", Tensor::from(w, {out, in}), Tensor::zeros({out, in}), false};
  if (bias) {
    std::vector<float> b(static_cast<std::size_t>(out));
    for (auto& v : b) v = rng.uniform(-bound, bound);
    b_ = {"bias", Tensor::from(b, {out}), Tensor::zeros({out}), false};
  }
}

Linear::Linear(Tensor weight, Tensor bias) {
  if (weight.dim() != 2 || (bias.defined() && (bias.dim() != 1 || bias.size(0) != weight.size(0))))
    throw UsageError(fmt::format("Linear: weight {} and bias {} are not [out, in] and [out]", weight.describe(),
                                 bias.defined() ? bias.describe() : std::string("none")));
  out_ = weight.size(0);
  in_ = weight.size(1);
  w_ = {"weight", weight, Tensor::zeros(weight.shape(), weight.dtype(), weight.device()), false};
  if (bias.defined()) b_ = {"bias", bias, Tensor::zeros(bias.shape(), bias.dtype(), bias.device()), false};
}

std::string Linear::describe() const { return fmt::format("linear({} -> {}{})", in_, out_, b_.value.defined() ? "" : ", no bias"); }

Tensor Linear::forward(const Tensor& x, Saved& s, const Mode&) {
  need_2d("linear", x, in_);
  Tensor& y = reuse(s.out, {x.size(0), out_}, x.device(), x.dtype());
  if (!ops::is_half(x.dtype())) {
    ops::linear_forward(x, w_.value, b_.value, y);
    s.t.assign({x});
    return y;
  }
  // Half-precision input: the product runs on a half copy of the float32
  // parameters, made now (they change every step).
  s.t.resize(kHalfSlots);
  s.t[0] = x;
  Tensor& w = reuse(s.t[kHalfWeight], w_.value.shape(), x.device(), x.dtype());
  ops::cast(w_.value, w);
  Tensor b;
  if (b_.value.defined()) {
    b = reuse(s.t[kHalfBias], b_.value.shape(), x.device(), x.dtype());
    ops::cast(b_.value, b);
  }
  ops::linear_forward(x, w, b, y);
  return y;
}

Tensor Linear::backward(const Tensor& dy, Saved& s, bool need_dx) {
  const Tensor& x = s.t.at(0);
  Tensor none;
  Tensor dx = need_dx ? grad_in(s, x) : Tensor();
  const bool acc = w_.grad_valid;
  if (ops::is_half(x.dtype())) {
    // Half gradients of the half copies, then into the float32 gradients (added when accumulating).
    Tensor& dw = reuse(s.t.at(kHalfDWeight), w_.value.shape(), x.device(), x.dtype());
    Tensor db = b_.value.defined() ? reuse(s.t.at(kHalfDBias), b_.value.shape(), x.device(), x.dtype()) : none;
    ops::linear_backward(x, s.t.at(kHalfWeight), dy, dx, dw, db, false);
    ops::cast(dw, w_.grad, acc);
    if (db.defined()) ops::cast(db, b_.grad, acc);
    w_.grad_valid = true;
    b_.grad_valid = b_.value.defined();
    return dx;
  }
  ops::linear_backward(x, w_.value, dy, dx, w_.grad, b_.value.defined() ? b_.grad : none, acc);
  w_.grad_valid = true;
  b_.grad_valid = b_.value.defined();
  return dx;
}

Tensor Linear::backward_input(const Tensor& dy, Saved& s, bool need_dx) {
  if (ops::is_half(s.t.at(0).dtype())) return backward(dy, s, need_dx);  // half copies: not split
  const Tensor& x = s.t.at(0);
  Tensor none, none2;
  Tensor dx = need_dx ? grad_in(s, x) : Tensor();
  if (need_dx) ops::linear_backward(x, w_.value, dy, dx, none, none2, false);
  s.dy = dy;
  return dx;
}

void Linear::backward_weight(Saved& s) {
  if (!s.dy.defined()) return;  // the half path did it all in backward_input
  Tensor none;
  ops::linear_backward(s.t.at(0), w_.value, s.dy, none, w_.grad, b_.value.defined() ? b_.grad : none, w_.grad_valid);
  w_.grad_valid = true;
  b_.grad_valid = b_.value.defined();
  s.dy = Tensor();
}

std::vector<Param*> Linear::params() {
  if (b_.value.defined()) return {&w_, &b_};
  return {&w_};
}

std::unique_ptr<Layer> Linear::clone() const {
  auto l = std::unique_ptr<Linear>(new Linear());
  l->in_ = in_;
  l->out_ = out_;
  auto copy = [](const Param& p) {
    return p.value.defined() ? Param{p.name, p.value.clone(), Tensor::zeros(p.value.shape(), p.value.dtype(), p.value.device()), false}
                             : Param{p.name, {}, {}, false};
  };
  l->w_ = copy(w_);
  l->b_ = copy(b_);
  return l;
}

Tensor ReLU::forward(const Tensor& x, Saved& s, const Mode&) {
  Tensor& y = reuse(s.out, x.shape(), x.device(), x.dtype());
  ops::relu_forward(x, y);
  s.t.assign({y});
  return y;
}

Tensor ReLU::backward(const Tensor& dy, Saved& s, bool need_dx) {
  if (!need_dx) return {};
  Tensor& dx = grad_in(s, dy);
  ops::relu_backward(s.t.at(0), dy, dx);
  return dx;
}

Tensor GELU::forward(const Tensor& x, Saved& s, const Mode&) {
  Tensor& y = reuse(s.out, x.shape(), x.device(), x.dtype());
  ops::gelu_forward(x, y);
  s.t.assign({x});
  return y;
}

Tensor GELU::backward(const Tensor& dy, Saved& s, bool need_dx) {
  if (!need_dx) return {};
  Tensor& dx = grad_in(s, dy);
  ops::gelu_backward(s.t.at(0), dy, dx);
  return dx;
}

Dropout::Dropout(float p, std::uint64_t salt) : p_(p), salt_(salt) {
  if (!(p >= 0.0f && p < 1.0f)) throw UsageError(fmt::format("Dropout({}): the probability must be in [0, 1)", p));
}

std::string Dropout::describe() const { return fmt::format("dropout({})", p_); }

Tensor Dropout::forward(const Tensor& x, Saved& s, const Mode& mode) {
  need_f32("dropout", x);
  if (!mode.training || p_ == 0.0f) {
    s.t.clear();
    return x;
  }
  Tensor& y = reuse(s.out, x.shape(), x.device());
  if (s.t.size() != 1 || s.t[0].shape() != x.shape() || s.t[0].device() != x.device())
    s.t.assign({Tensor::empty(x.shape(), compute::DType::f32, x.device())});
  ops::dropout_forward(x, p_, mode.seed * 0x100000001B3ull + salt_, y, s.t[0]);
  return y;
}

Tensor Dropout::backward(const Tensor& dy, Saved& s, bool need_dx) {
  if (!need_dx) return {};
  if (s.t.empty()) return dy;  // the identity pass
  Tensor& dx = grad_in(s, dy);
  ops::dropout_backward(dy, s.t[0], dx);
  return dx;
}

LayerNorm::LayerNorm(std::int64_t features, float eps) : d_(features), eps_(eps) {
  if (features <= 0) throw UsageError(fmt::format("LayerNorm({}): the feature count must be positive", features));
  g_ = {"weight", Tensor::empty({features}), Tensor::zeros({features}), false};
  g_.value.fill(1.0f);
  b_ = {"bias", Tensor::zeros({features}), Tensor::zeros({features}), false};
}

std::string LayerNorm::describe() const { return fmt::format("layernorm({})", d_); }

Tensor LayerNorm::forward(const Tensor& x, Saved& s, const Mode&) {
  need_2d("layernorm", x, d_);
  need_f32("layernorm", x);
  Tensor& y = reuse(s.out, x.shape(), x.device());
  const auto B = x.size(0);
  if (s.t.size() != 3) s.t.resize(3);
  s.t[0] = x;
  reuse(s.t[1], {B}, x.device());
  reuse(s.t[2], {B}, x.device());
  ops::layernorm_forward(x, g_.value, b_.value, eps_, y, s.t[1], s.t[2]);
  return y;
}

Tensor LayerNorm::backward(const Tensor& dy, Saved& s, bool need_dx) {
  Tensor dx = need_dx ? grad_in(s, dy) : Tensor();
  ops::layernorm_backward(s.t.at(0), g_.value, s.t.at(1), s.t.at(2), dy, dx, g_.grad, b_.grad, g_.grad_valid);
  g_.grad_valid = b_.grad_valid = true;
  return dx;
}

std::unique_ptr<Layer> LayerNorm::clone() const {
  auto l = std::unique_ptr<LayerNorm>(new LayerNorm());
  l->d_ = d_;
  l->eps_ = eps_;
  l->g_ = {g_.name, g_.value.clone(), Tensor::zeros({d_}, compute::DType::f32, g_.value.device()), false};
  l->b_ = {b_.name, b_.value.clone(), Tensor::zeros({d_}, compute::DType::f32, b_.value.device()), false};
  return l;
}

}  // namespace troupe::nn
