#pragma once
// Optimizers with PyTorch's update rules, gradient clipping and learning-rate
// schedules. State lives next to the parameters (same device), keyed by the
// parameter's name so it can be checkpointed and restored.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "actors/nn/layer.hpp"
#include "runtime/enum_words.hpp"

namespace troupe::optim {

/// The update rule (TrainConfig::optimizer): Sgd or AdamW below.
enum class Algorithm : std::uint8_t { sgd, adamw };
/// The shape of a learning-rate schedule after its warm-up (LrSchedule).
enum class LrKind : std::uint8_t { constant, cosine, linear };

}  // namespace troupe::optim

template <>
struct troupe::EnumWords<troupe::optim::Algorithm> {
  static constexpr std::array<std::string_view, 2> words{"sgd", "adamw"};
};
template <>
struct troupe::EnumWords<troupe::optim::LrKind> {
  static constexpr std::array<std::string_view, 3> words{"constant", "cosine", "linear"};
};

namespace troupe::optim {

/// "sgd", "adamw" (parse_enum<Algorithm> reads them).
constexpr std::string_view to_string(Algorithm a) noexcept { return enum_word(a); }
/// "constant", "cosine", "linear" (parse_enum<LrKind> reads them).
constexpr std::string_view to_string(LrKind k) noexcept { return enum_word(k); }

using nn::Param;
using compute::Tensor;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// One update of every parameter from its gradient (a stale gradient reads as zero).
  void step(const std::vector<Param*>& params);
  float lr() const noexcept { return lr_; }
  void set_lr(float lr) noexcept { lr_ = lr; }
  std::int64_t steps() const noexcept { return steps_; }
  void set_steps(std::int64_t s) noexcept { steps_ = s; }
  virtual std::string kind() const = 0;
  /// Named state tensors ("<param>.<buffer>"), made on first use.
  std::map<std::string, Tensor>& state() noexcept { return state_; }

 protected:
  explicit Optimizer(float lr) : lr_(lr) {}
  virtual void update(Param& p) = 0;
  /// The state tensor "<param>.<what>"; *fresh is set when it was just made (zeros).
  Tensor& buffer(const Param& p, const char* what, bool* fresh = nullptr);

  float lr_;
  std::int64_t steps_ = 0;
  std::map<std::string, Tensor> state_;
};

struct SgdOptions {
  float lr = 0.01f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

/// torch.optim.SGD: d = g + wd p; buf = m buf + (1 - dampening) d (buf = d at
/// first); d = nesterov ? d + m buf : buf; p -= lr d.
class Sgd final : public Optimizer {
 public:
  explicit Sgd(const SgdOptions& o);
  std::string kind() const override { return std::string(to_string(Algorithm::sgd)); }

 private:
  void update(Param& p) override;
  SgdOptions o_;
};

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.01f;
};

/// torch.optim.AdamW: decoupled weight decay, bias-corrected moments.
class AdamW final : public Optimizer {
 public:
  explicit AdamW(const AdamWOptions& o);
  std::string kind() const override { return std::string(to_string(Algorithm::adamw)); }

 private:
  void update(Param& p) override;
  AdamWOptions o_;
};

/// Scales every gradient so their joint L2 norm is at most max_norm; returns
/// the norm before clipping (torch.nn.utils.clip_grad_norm_).
float clip_grad_norm(const std::vector<Param*>& params, float max_norm);
/// What clip_grad_norm scales the gradients by for a norm (1: left alone);
/// for workers that compute the norm together (pipeline stages).
float clip_factor(float norm, float max_norm);

/// Learning rate by step: linear warm-up over warmup_steps, then constant,
/// cosine or linear decay to min_lr at total_steps.
struct LrSchedule {
  using Kind = LrKind;
  Kind kind = Kind::constant;
  float base_lr = 0.01f;
  std::int64_t warmup_steps = 0;
  std::int64_t total_steps = 0;
  float min_lr = 0.0f;

  float at(std::int64_t step) const;
  /// "constant", "cosine", "linear"; anything else is a UsageError naming it.
  static Kind parse(std::string_view name);
};

}  // namespace troupe::optim
