#pragma once
// Half-precision tensors: bf16 and fp16. On a CUDA device the operations in
// ops.hpp that a linear classifier needs take them (linear, ReLU, GELU,
// softmax cross-entropy, argmax counts), reading and writing half elements
// and computing in float32 inside; the optimizers keep float32 parameters.
// A model trains in half precision when its input is half: each Linear
// layer uses a half copy of its float32 weights, its activations and their
// gradients are half, and the weight gradients land in float32 (what
// PyTorch's autocast does for a linear layer). Dropout and layer norm stay
// float32. On the host, half tensors can be made, cast and read, not
// computed on.
#include <cstdint>

#include "actors/compute/tensor.hpp"

namespace troupe::compute {

/// bf16 or f16.
bool is_half(DType t) noexcept;

/// Round to nearest even, as the device does; NaN stays NaN, too large is infinity.
std::uint16_t to_bf16(float v) noexcept;
std::uint16_t to_f16(float v) noexcept;
float from_bf16(std::uint16_t bits) noexcept;
float from_f16(std::uint16_t bits) noexcept;

/// dst = src converted (dst += src when accumulate), same shape and device,
/// any of f32, bf16 and f16 each side.
void cast(const Tensor& src, Tensor& dst, bool accumulate = false);
/// A contiguous copy of t with elements of type d, on t's device.
Tensor cast_to(const Tensor& t, DType d);

}  // namespace troupe::compute
