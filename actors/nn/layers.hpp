#pragma once
// The layers models are built from.
#include "actors/nn/layer.hpp"

namespace troupe::nn {

/// y = x W^T + b, W [out, in]; initialised as torch.nn.Linear (kaiming-uniform
/// with a = sqrt(5): weights and bias uniform in +-1/sqrt(in)) from seed.
class Linear final : public Layer {
 public:
  Linear(std::int64_t in, std::int64_t out, bool bias, std::uint64_t seed);
  /// With these values: weight [out, in] (float32, on the host), bias [out] or undefined.
  Linear(Tensor weight, Tensor bias);
  std::string kind() const override { return "linear"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x, Saved& saved, const Mode& mode) override;
  Tensor backward(const Tensor& dy, Saved& saved, bool need_dx) override;
  Tensor backward_input(const Tensor& dy, Saved& saved, bool need_dx) override;
  void backward_weight(Saved& saved) override;
  std::vector<Param*> params() override;
  std::unique_ptr<Layer> clone() const override;
  std::int64_t in_features() const noexcept { return in_; }
  std::int64_t out_features() const noexcept { return out_; }
  Param& weight() { return w_; }
  Param& bias() { return b_; }

 private:
  Linear() = default;
  std::int64_t in_ = 0, out_ = 0;
  Param w_, b_;
};

class ReLU final : public Layer {
 public:
  std::string kind() const override { return "relu"; }
  Tensor forward(const Tensor& x, Saved& saved, const Mode& mode) override;
  Tensor backward(const Tensor& dy, Saved& saved, bool need_dx) override;
  std::unique_ptr<Layer> clone() const override { return std::make_unique<ReLU>(); }
};

/// GELU with erf, as torch.nn.GELU().
class GELU final : public Layer {
 public:
  std::string kind() const override { return "gelu"; }
  Tensor forward(const Tensor& x, Saved& saved, const Mode& mode) override;
  Tensor backward(const Tensor& dy, Saved& saved, bool need_dx) override;
  std::unique_ptr<Layer> clone() const override { return std::make_unique<GELU>(); }
};

/// Inverted dropout; the identity outside training.
class Dropout final : public Layer {
 public:
  explicit Dropout(float p, std::uint64_t salt = 0);
  std::string kind() const override { return "dropout"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x, Saved& saved, const Mode& mode) override;
  Tensor backward(const Tensor& dy, Saved& saved, bool need_dx) override;
  std::unique_ptr<Layer> clone() const override { return std::make_unique<Dropout>(p_, salt_); }

 private:
  float p_;
  std::uint64_t salt_;  // the layer's position: two dropouts draw different masks
};

/// Normalises the last dimension; gamma = 1, beta = 0 at the start.
class LayerNorm final : public Layer {
 public:
  explicit LayerNorm(std::int64_t features, float eps = 1e-5f);
  std::string kind() const override { return "layernorm"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x, Saved& saved, const Mode& mode) override;
  Tensor backward(const Tensor& dy, Saved& saved, bool need_dx) override;
  std::vector<Param*> params() override { return {&g_, &b_}; }
  std::unique_ptr<Layer> clone() const override;

 private:
  LayerNorm() = default;
  std::int64_t d_ = 0;
  float eps_ = 1e-5f;
  Param g_, b_;
};

/// Uniform draws for initialisation: a splitmix64 stream, the same on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next();
  float uniform(float lo, float hi);  ///< [lo, hi)

 private:
  std::uint64_t s_;
};

}  // namespace troupe::nn
