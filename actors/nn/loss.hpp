#pragma once
// Softmax cross-entropy as the loss of a classifier, forward and backward in one pass.
#include "actors/compute/tensor.hpp"

namespace troupe::nn {

using compute::Tensor;

class CrossEntropy {
 public:
  /// Mean loss of logits[B,C] against int32 labels[B]; keeps d(loss)/d(logits)
  /// for backward. On a device it is queued, not waited for.
  const Tensor& forward_backward(const Tensor& logits, const Tensor& labels);
  const Tensor& dlogits() const noexcept { return dlogits_; }
  float loss() const;     ///< the last mean loss (waits for a device)
  float correct() const;  ///< rows of the last batch whose argmax is their label

 private:
  Tensor dlogits_, loss_, correct_;
};

/// Rows of logits[B,C] whose argmax equals their int32 label.
std::int64_t count_correct(const Tensor& logits, const Tensor& labels);

}  // namespace troupe::nn
