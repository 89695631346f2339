#include "actors/nn/loss.hpp"

#include "actors/compute/ops.hpp"
#include "actors/nn/layer.hpp"

namespace troupe::nn {

const Tensor& CrossEntropy::forward_backward(const Tensor& logits, const Tensor& labels) {
  reuse(dlogits_, logits.shape(), logits.device(), logits.dtype());  // half logits: half gradients
  reuse(loss_, {1}, logits.device());
  reuse(correct_, {1}, logits.device());
  compute::softmax_xent(logits, labels, dlogits_, loss_, correct_);
  return dlogits_;
}

float CrossEntropy::loss() const { return loss_.defined() ? loss_.item() : 0.0f; }
float CrossEntropy::correct() const { return correct_.defined() ? correct_.item() : 0.0f; }

std::int64_t count_correct(const Tensor& logits, const Tensor& labels) {
  Tensor c = Tensor::empty({1}, compute::DType::f32, logits.device());
  compute::count_correct(logits, labels, c);
  return static_cast<std::int64_t>(c.item());
}

}  // namespace troupe::nn
