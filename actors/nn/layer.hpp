#pragma once
// A layer: forward keeps what its backward needs in a Saved slot the caller
// owns (one per micro-batch in flight), backward adds its parameters'
// gradients and returns the gradient of its input.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "actors/compute/tensor.hpp"

namespace troupe::nn {

using compute::Device;
using compute::Shape;
using compute::Tensor;

/// A trainable tensor and its gradient. The gradient is "fresh" after
/// zero_grad: the next backward writes it instead of adding to it (no pass
/// to clear it first).
struct Param {
  std::string name;  ///< "<layer index>.<weight|bias>", as in a PyTorch Sequential
  Tensor value;
  Tensor grad;
  bool grad_valid = false;  ///< false: grad holds nothing yet (reads as zero)
};

/// How a forward pass runs.
struct Mode {
  bool training = true;
  std::uint64_t seed = 0;  ///< dropout draws for this pass (vary it per step)
};

/// What one layer kept from one forward pass, and buffers it reuses.
struct Saved {
  std::vector<Tensor> t;
  Tensor out, grad_in;  // reused across passes while shapes match
  Tensor dy;            // backward_input keeps the output gradient for backward_weight
};

/// A tensor of this shape and type on dev: slot if it already is one, else a new one.
Tensor& reuse(Tensor& slot, const Shape& shape, Device dev, compute::DType dtype = compute::DType::f32);

class Layer {
 public:
  virtual ~Layer() = default;
  virtual std::string kind() const = 0;
  virtual std::string describe() const { return kind(); }
  virtual Tensor forward(const Tensor& x, Saved& saved, const Mode& mode) = 0;
  /// need_dx false: the first layer, whose input gradient nobody reads.
  virtual Tensor backward(const Tensor& dy, Saved& saved, bool need_dx) = 0;
  /// The split backward of zero-bubble schedules: the input gradient now
  /// (what the previous pipeline stage waits for), the parameters' gradients
  /// later from what it kept (backward_weight, same Saved). Together they
  /// compute exactly what backward does. Layers that do not split compute
  /// everything here and nothing in backward_weight.
  virtual Tensor backward_input(const Tensor& dy, Saved& saved, bool need_dx) { return backward(dy, saved, need_dx); }
  virtual void backward_weight(Saved& saved) { (void)saved; }
  virtual std::vector<Param*> params() { return {}; }
  virtual std::unique_ptr<Layer> clone() const = 0;
};

}  // namespace troupe::nn
