// A build without CUDA: device tensors cannot exist (allocation refuses), so
// these are never reached with data; they refuse all the same.
#include "actors/compute/errors.hpp"
#include "actors/compute/ops_impl.hpp"

namespace troupe::compute::impl::gpu {

namespace {
[[noreturn]] void refuse() { throw DeviceError("device operations: this build of troupe has no CUDA"); }
}  // namespace

void bind(int, Stream*) { refuse(); }
void linear_forward(const float*, const float*, const float*, float*, std::int64_t, std::int64_t, std::int64_t) { refuse(); }
void linear_backward(const float*, const float*, const float*, float*, float*, float*, std::int64_t, std::int64_t,
                     std::int64_t, bool) { refuse(); }
void relu_forward(const float*, float*, std::int64_t) { refuse(); }
void relu_backward(const float*, const float*, float*, std::int64_t) { refuse(); }
void gelu_forward(const float*, float*, std::int64_t) { refuse(); }
void gelu_backward(const float*, const float*, float*, std::int64_t) { refuse(); }
void dropout_forward(const float*, float, std::uint64_t, float*, float*, std::int64_t) { refuse(); }
void mul(const float*, const float*, float*, std::int64_t) { refuse(); }
void layernorm_forward(const float*, const float*, const float*, float, float*, float*, float*, std::int64_t,
                       std::int64_t) { refuse(); }
void layernorm_backward(const float*, const float*, const float*, const float*, const float*, float*, float*, float*,
                        std::int64_t, std::int64_t, bool) { refuse(); }
void softmax_xent(const float*, const std::int32_t*, float*, float*, float*, std::int64_t, std::int64_t) { refuse(); }
void count_correct(const float*, const std::int32_t*, float*, std::int64_t, std::int64_t) { refuse(); }
void sgd_update(float*, const float*, float*, std::int64_t, float, float, float, bool, float, bool) { refuse(); }
void adamw_update(float*, const float*, float*, float*, std::int64_t, float, float, float, float, float, std::int64_t) {
  refuse();
}
void sum_squares(const float*, std::int64_t, float*) { refuse(); }
void scale(float*, std::int64_t, float) { refuse(); }
void axpy(float*, const float*, std::int64_t, float) { refuse(); }
void unary(Unary, DType, const void*, const void*, void*, std::int64_t) { refuse(); }
void softmax_xent(DType, const void*, const std::int32_t*, void*, float*, float*, std::int64_t, std::int64_t) { refuse(); }
void count_correct(DType, const void*, const std::int32_t*, float*, std::int64_t, std::int64_t) { refuse(); }
void linear_forward(DType, const void*, const void*, const void*, void*, std::int64_t, std::int64_t, std::int64_t) {
  refuse();
}
void linear_backward(DType, const void*, const void*, const void*, void*, void*, void*, std::int64_t, std::int64_t,
                     std::int64_t, bool) {
  refuse();
}
void cast(DType, const void*, DType, void*, std::int64_t, bool) { refuse(); }

}  // namespace troupe::compute::impl::gpu
