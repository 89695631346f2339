// The linear layer on the device for every element type (f32, bf16, f16):
// cuBLAS products with float32 accumulation and scale, the bias through
// cublasLt's epilogue, its gradient a product with a cached vector of ones
// (a column-sum kernel was 2 ms of a 4 ms step at batch 8192); and the
// conversions between element types.
#include <cstdint>
#include <map>
#include <utility>

#include "actors/compute/cuda/check.hpp"
#include "actors/compute/cuda/kernels.cuh"
#include "actors/compute/ops_impl.hpp"

namespace troupe::compute::impl::gpu {

using namespace cu;

namespace {

template <class From, class To>
__global__ void k_cast(const From* src, To* dst, std::int64_t n, bool acc) {
  GRID_STRIDE(i, n) dst[i] = st<To>(acc ? ld(dst[i]) + ld(src[i]) : ld(src[i]));
}

template <class T>
__global__ void k_fill(T* p, std::int64_t n, float v) {
  GRID_STRIDE(i, n) p[i] = st<T>(v);
}

template <class T>
__global__ void k_bias_rows(T* y, const T* b, std::int64_t B, std::int64_t out) {
  GRID_STRIDE(i, B * out) y[i] = b[i % out];
}

// At least n ones of type t on the bound device (grown outside graph capture:
// the first step at a batch size allocates, later ones reuse).
const void* ones(DType t, std::int64_t n) {
  thread_local std::map<std::pair<int, DType>, std::pair<void*, std::int64_t>> ones;
  auto& slot = ones[{device(), t}];
  void*& p = slot.first;
  std::int64_t& len = slot.second;
  if (len < n) {
    if (p) TROUPE_CUDA_CHECK(cudaFree(p));
    p = nullptr;
    len = 0;
    const std::int64_t want = std::max<std::int64_t>(n, 1024);
    TROUPE_CUDA_CHECK(cudaMalloc(&p, static_cast<std::size_t>(want) * dtype_size(t)));
    with_type(t, "ones", [&](auto v) {
      using T = decltype(v);
      TROUPE_LAUNCH(k_fill<T>, grid(want), kThreads, static_cast<T*>(p), want, 1.0f);
    });
    len = want;
  }
  return p;
}

// C (m x n, column-major, ld ldc) = A (op) B (op), elements of type t, float32 accumulation.
void gemm(DType t, cublasOperation_t ta, cublasOperation_t tb, std::int64_t m, std::int64_t n, std::int64_t k,
          const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c, std::int64_t ldc) {
  const float one = 1.0f;
  const cudaDataType_t ct = cuda_type(t);
  TROUPE_CUBLAS_CHECK(cublasGemmEx(blas(), ta, tb, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), &one,
                                   a, ct, static_cast<int>(lda), b, ct, static_cast<int>(ldb), &beta, c, ct,
                                   static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void zero(void* p, std::int64_t n, DType t) {
  TROUPE_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<std::size_t>(n) * dtype_size(t), stream()));
}

}  // namespace

void cast(DType from, const void* src, DType to, void* dst, std::int64_t n, bool accumulate) {
  if (!n) return;
  with_type(from, "cast", [&](auto f) {
    using From = decltype(f);
    with_type(to, "cast", [&](auto t) {
      using To = decltype(t);
      const auto kernel = k_cast<From, To>;
      TROUPE_LAUNCH(kernel, grid(n), kThreads, static_cast<const From*>(src), static_cast<To*>(dst), n, accumulate);
    });
  });
}

void linear_forward(DType t, const void* x, const void* w, const void* b, void* y, std::int64_t B,
                         std::int64_t in, std::int64_t out) {
  if (B == 0 || out == 0) return;
  if (b && in > 0 && lt_linear(cuda_type(t), x, w, b, y, B, in, out)) return;
  float beta = 0.0f;
  if (b) {
    with_type(t, "linear_forward", [&](auto v) {
      using T = decltype(v);
      TROUPE_LAUNCH(k_bias_rows<T>, grid(B * out), kThreads, static_cast<T*>(y), static_cast<const T*>(b), B, out);
    });
    beta = 1.0f;
  }
  if (in == 0) {
    if (!b) zero(y, B * out, t);
    return;
  }
  // Column-major: y^T (out x B) = W (in x out)^T x^T (in x B).
  gemm(t, CUBLAS_OP_T, CUBLAS_OP_N, out, B, in, w, in, x, in, beta, y, out);
}

void linear_backward(DType t, const void* x, const void* w, const void* dy, void* dx, void* dw, void* db,
                          std::int64_t B, std::int64_t in, std::int64_t out, bool accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  if (dw && in > 0 && out > 0) {
    if (B == 0) {
      if (!accumulate) zero(dw, in * out, t);
    } else {
      gemm(t, CUBLAS_OP_N, CUBLAS_OP_T, in, out, B, x, in, dy, out, beta, dw, in);  // dW^T = x^T dy
    }
  }
  if (db && out > 0) {
    if (B == 0) {
      if (!accumulate) zero(db, out, t);
    } else {
      gemm(t, CUBLAS_OP_N, CUBLAS_OP_N, out, 1, B, dy, out, ones(t, B), B, beta, db, out);  // dy^T 1
    }
  }
  if (dx && B > 0 && in > 0) {
    if (out == 0)
      zero(dx, B * in, t);
    else
      gemm(t, CUBLAS_OP_N, CUBLAS_OP_N, in, B, out, w, in, dy, out, 0.0f, dx, in);  // dx = dy W
  }
}

}  // namespace troupe::compute::impl::gpu
