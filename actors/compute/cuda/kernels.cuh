#pragma once
// What the device kernel files share: the thread's bound stream and cuBLAS
// handle (ops.cu keeps them), launch shapes, a block-wide sum, and the element
// types a kernel reads and writes (float32, bf16, fp16: math is float32).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "actors/compute/cuda/check.hpp"
#include "actors/compute/dtype.hpp"

namespace troupe::compute::impl::gpu::cu {

/// The stream and cuBLAS handle of this thread's bound device (ops.cu).
cudaStream_t stream();
cublasHandle_t blas();
int device();
/// y[B, out] = x[B, in] W^T + b through cublasLt with the bias in the
/// epilogue, elements of `type`; false when cublasLt has no plan for it.
bool lt_linear(cudaDataType_t type, const void* x, const void* w, const void* b, void* y, std::int64_t B,
               std::int64_t in, std::int64_t out);

constexpr int kThreads = 256;
inline unsigned grid(std::int64_t n) {
  return static_cast<unsigned>(std::max<std::int64_t>(1, std::min<std::int64_t>((n + kThreads - 1) / kThreads, 65535)));
}
/// Threads for one block per row of D elements.
inline int row_threads(std::int64_t D) {
  int t = 32;
  while (t < 1024 && t < D) t *= 2;
  return t;
}

#define TROUPE_LAUNCH(kernel, blocks, threads, ...)                              \
  do {                                                                           \
    kernel<<<(blocks), (threads), 0, ::troupe::compute::impl::gpu::cu::stream()>>>(__VA_ARGS__); \
    TROUPE_CUDA_CHECK(cudaGetLastError());                                       \
  } while (0)

#define GRID_STRIDE(i, n) \
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < (n); i += std::int64_t(gridDim.x) * blockDim.x)

// Block-wide sum (blockDim.x a multiple of 32, at most 1024).
__device__ inline float block_sum(float v) {
  __shared__ float part[32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  __syncthreads();
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? part[lane] : 0.0f;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (threadIdx.x == 0) part[0] = v;
  __syncthreads();
  return part[0];
}

// Element loads and stores: float32 math on every storage type (round to nearest even on store).
__device__ __forceinline__ float ld(float v) { return v; }
__device__ __forceinline__ float ld(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float ld(__half v) { return __half2float(v); }
template <class T>
__device__ __forceinline__ T st(float v);
template <>
__device__ __forceinline__ float st<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 st<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half st<__half>(float v) { return __float2half_rn(v); }

/// Calls f with a value of the element type of dtype t (float, __nv_bfloat16, __half).
template <class F>
void with_type(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); return;
    case DType::bf16: f(__nv_bfloat16{}); return;
    case DType::f16: f(__half{}); return;
    default: throw ShapeError(fmt::format("{}: no device kernel for {} elements", op, dtype_name(t)));
  }
}

inline cudaDataType_t cuda_type(DType t) {
  return t == DType::bf16 ? CUDA_R_16BF : t == DType::f16 ? CUDA_R_16F : CUDA_R_32F;
}

}  // namespace troupe::compute::impl::gpu::cu
