#pragma once
// Per-device implementations behind ops.hpp (not for callers): raw pointers
// and sizes, checked and dispatched by ops.cpp. The host's are in
// ops_cpu.cpp; the device's in cuda/*.cu, which build into the CUDA plugin
// and reach ops.cpp through its table (gpu_ops.hpp).
#include <cstdint>

#include "actors/compute/dtype.hpp"

namespace troupe::compute {
class Stream;
}

// The float32 operations every device has: X(name, (parameters)).
#define TROUPE_COMPUTE_OPS(X)                                                                                       \
  X(linear_forward, (const float* x, const float* w, const float* b, float* y, std::int64_t B, std::int64_t in,    \
                     std::int64_t out))                                                                             \
  X(linear_backward, (const float* x, const float* w, const float* dy, float* dx, float* dw, float* db,            \
                      std::int64_t B, std::int64_t in, std::int64_t out, bool accumulate))                          \
  X(relu_forward, (const float* x, float* y, std::int64_t n))                                                       \
  X(relu_backward, (const float* y, const float* dy, float* dx, std::int64_t n))                                    \
  X(gelu_forward, (const float* x, float* y, std::int64_t n))                                                       \
  X(gelu_backward, (const float* x, const float* dy, float* dx, std::int64_t n))                                    \
  X(dropout_forward, (const float* x, float p, std::uint64_t seed, float* y, float* mask, std::int64_t n))          \
  X(mul, (const float* a, const float* b, float* out, std::int64_t n))                                              \
  X(layernorm_forward, (const float* x, const float* g, const float* b, float eps, float* y, float* mean,          \
                        float* rstd, std::int64_t B, std::int64_t D))                                               \
  X(layernorm_backward, (const float* x, const float* g, const float* mean, const float* rstd, const float* dy,    \
                         float* dx, float* dg, float* db, std::int64_t B, std::int64_t D, bool accumulate))         \
  X(softmax_xent, (const float* logits, const std::int32_t* labels, float* dlogits, float* loss, float* correct,   \
                   std::int64_t B, std::int64_t C))                                                                 \
  X(count_correct, (const float* logits, const std::int32_t* labels, float* correct, std::int64_t B,               \
                    std::int64_t C))                                                                                \
  X(sgd_update, (float* p, const float* g, float* buf, std::int64_t n, float lr, float momentum, float dampening,   \
                 bool nesterov, float wd, bool first))                                                              \
  X(adamw_update, (float* p, const float* g, float* m, float* v, std::int64_t n, float lr, float b1, float b2,     \
                   float eps, float wd, std::int64_t step))                                                         \
  X(sum_squares, (const float* t, std::int64_t n, float* out))                                                      \
  X(scale, (float* t, std::int64_t n, float f))                                                                     \
  X(axpy, (float* y, const float* x, std::int64_t n, float alpha))

namespace troupe::compute::impl {

#define TROUPE_DECLARE_OP(name, params) void name params;
namespace cpu {
TROUPE_COMPUTE_OPS(TROUPE_DECLARE_OP)
}
namespace gpu {
TROUPE_COMPUTE_OPS(TROUPE_DECLARE_OP)
}
#undef TROUPE_DECLARE_OP

namespace gpu {
/// Binds the device ops of this thread to a device and stream.
void bind(int device, Stream* stream);

// Any element type the device computes on (f32, bf16, f16: float32 math and
// accumulation inside, results rounded to the operands' type).
enum class Unary { relu, relu_backward, gelu, gelu_backward };
/// relu/gelu: out = f(a); their backward: out = f'(a) * b (a: relu's output, gelu's input).
void unary(Unary op, DType t, const void* a, const void* b, void* out, std::int64_t n);
void softmax_xent(DType t, const void* logits, const std::int32_t* labels, void* dlogits, float* loss, float* correct,
                  std::int64_t B, std::int64_t C);
void count_correct(DType t, const void* logits, const std::int32_t* labels, float* correct, std::int64_t B,
                   std::int64_t C);
/// linear_forward / linear_backward on operands of any of those types.
void linear_forward(DType t, const void* x, const void* w, const void* b, void* y, std::int64_t B, std::int64_t in,
                    std::int64_t out);
void linear_backward(DType t, const void* x, const void* w, const void* dy, void* dx, void* dw, void* db,
                     std::int64_t B, std::int64_t in, std::int64_t out, bool accumulate);
/// dst (+)= src converted, n elements, between any of f32, bf16, f16.
void cast(DType from, const void* src, DType to, void* dst, std::int64_t n, bool accumulate);
}  // namespace gpu

}  // namespace troupe::compute::impl
