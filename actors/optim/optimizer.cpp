#include "actors/optim/optimizer.hpp"

#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/compute/ops.hpp"

namespace troupe::optim {

void Optimizer::step(const std::vector<Param*>& params) {
  ++steps_;
  for (Param* p : params) {
    if (!p->grad_valid) {  // nothing wrote it since zero_grad: a zero gradient
      p->grad.zero();
      p->grad_valid = true;
    }
    update(*p);
  }
}

Tensor& Optimizer::buffer(const Param& p, const char* what, bool* fresh) {
  auto& t = state_[fmt::format("{}.{}", p.name, what)];
  const bool make = !t.defined() || t.shape() != p.value.shape() || t.device() != p.value.device();
  if (make) t = Tensor::zeros(p.value.shape(), compute::DType::f32, p.value.device());
  if (fresh) *fresh = make;
  return t;
}

Sgd::Sgd(const SgdOptions& o) : Optimizer(o.lr), o_(o) {
  if (!(o.lr >= 0.0f)) throw UsageError(fmt::format("sgd: learning rate {} must be at least 0", o.lr));
  if (!(o.momentum >= 0.0f)) throw UsageError(fmt::format("sgd: momentum {} must be at least 0", o.momentum));
  if (!(o.weight_decay >= 0.0f)) throw UsageError(fmt::format("sgd: weight_decay {} must be at least 0", o.weight_decay));
  if (o.nesterov && (o.momentum <= 0.0f || o.dampening != 0.0f))
    throw UsageError("sgd: nesterov needs a momentum above 0 and zero dampening");
}

void Sgd::update(Param& p) {
  Tensor none;
  bool first = false;
  Tensor& buf = o_.momentum != 0.0f ? buffer(p, "momentum", &first) : none;
  compute::sgd_update(p.value, p.grad, buf, lr_, o_.momentum, o_.dampening, o_.nesterov, o_.weight_decay, first);
}

AdamW::AdamW(const AdamWOptions& o) : Optimizer(o.lr), o_(o) {
  if (!(o.lr >= 0.0f)) throw UsageError(fmt::format("adamw: learning rate {} must be at least 0", o.lr));
  if (!(o.beta1 >= 0.0f && o.beta1 < 1.0f) || !(o.beta2 >= 0.0f && o.beta2 < 1.0f))
    throw UsageError(fmt::format("adamw: betas ({}, {}) must be in [0, 1)", o.beta1, o.beta2));
  if (!(o.eps > 0.0f)) throw UsageError(fmt::format("adamw: eps {} must be above 0", o.eps));
}

void AdamW::update(Param& p) {
  compute::adamw_update(p.value, p.grad, buffer(p, "exp_avg"), buffer(p, "exp_avg_sq"), lr_, o_.beta1, o_.beta2,
                        o_.eps, o_.weight_decay, steps_);
}

float clip_grad_norm(const std::vector<Param*>& params, float max_norm) {
  if (params.empty()) return 0.0f;
  Tensor total = Tensor::zeros({1}, compute::DType::f32, params.front()->value.device());
  for (Param* p : params)
    if (p->grad_valid) compute::sum_squares(p->grad, total);
  const float norm = std::sqrt(total.item());
  const float factor = clip_factor(norm, max_norm);
  if (factor < 1.0f)
    for (Param* p : params)
      if (p->grad_valid) compute::scale_(p->grad, factor);
  return norm;
}

float clip_factor(float norm, float max_norm) {
  const float factor = max_norm / (norm + 1e-6f);
  return factor < 1.0f ? factor : 1.0f;
}

float LrSchedule::at(std::int64_t step) const {
  if (step < warmup_steps) return base_lr * static_cast<float>(step + 1) / static_cast<float>(warmup_steps);
  if (kind == Kind::constant || total_steps <= warmup_steps) return base_lr;
  const double progress =
      std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps));
  if (kind == Kind::cosine)
    return static_cast<float>(min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress)));
  return static_cast<float>(base_lr + (min_lr - base_lr) * progress);
}

LrSchedule::Kind LrSchedule::parse(std::string_view name) { return to_enum<LrKind>(name, "learning-rate schedule"); }

}  // namespace troupe::optim
