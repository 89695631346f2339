// Row-wise device kernels behind ops.hpp: layer normalisation, softmax
// cross-entropy and argmax counts (one block per row, or a thread per row).
// The classifier's logits may be float32, bf16 or fp16; sums are float32.
#include <cstdint>

#include "actors/compute/cuda/check.hpp"
#include "actors/compute/cuda/kernels.cuh"
#include "actors/compute/ops_impl.hpp"

namespace troupe::compute::impl::gpu {

using namespace cu;

namespace {

__global__ void k_layernorm(const float* x, const float* g, const float* b, float eps, float* y, float* mean,
                            float* rstd, std::int64_t D) {
  const std::int64_t r = blockIdx.x;
  const float* xr = x + r * D;
  float s = 0.0f;
  for (std::int64_t i = threadIdx.x; i < D; i += blockDim.x) s += xr[i];
  const float mu = block_sum(s) / static_cast<float>(D);
  float v = 0.0f;
  for (std::int64_t i = threadIdx.x; i < D; i += blockDim.x) v += (xr[i] - mu) * (xr[i] - mu);
  const float rs = rsqrtf(block_sum(v) / static_cast<float>(D) + eps);
  if (threadIdx.x == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
  for (std::int64_t i = threadIdx.x; i < D; i += blockDim.x) y[r * D + i] = (xr[i] - mu) * rs * g[i] + b[i];
}

__global__ void k_layernorm_dx(const float* x, const float* g, const float* mean, const float* rstd, const float* dy,
                               float* dx, std::int64_t D) {
  const std::int64_t r = blockIdx.x;
  const float mu = mean[r], rs = rstd[r];
  float s1 = 0.0f, s2 = 0.0f;
  for (std::int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float dxhat = dy[r * D + i] * g[i];
    s1 += dxhat;
    s2 += dxhat * (x[r * D + i] - mu) * rs;
  }
  const float m1 = block_sum(s1) / static_cast<float>(D);
  const float m2 = block_sum(s2) / static_cast<float>(D);
  for (std::int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float xhat = (x[r * D + i] - mu) * rs;
    dx[r * D + i] = rs * (dy[r * D + i] * g[i] - m1 - xhat * m2);
  }
}

__global__ void k_layernorm_dparams(const float* x, const float* mean, const float* rstd, const float* dy, float* dg,
                                    float* db, std::int64_t B, std::int64_t D, bool acc) {
  GRID_STRIDE(c, D) {
    float sg = 0.0f, sb = 0.0f;
    for (std::int64_t r = 0; r < B; ++r) {
      const float d = dy[r * D + c];
      sg += d * (x[r * D + c] - mean[r]) * rstd[r];
      sb += d;
    }
    if (dg) dg[c] = (acc ? dg[c] : 0.0f) + sg;
    if (db) db[c] = (acc ? db[c] : 0.0f) + sb;
  }
}

// One block per row: softmax, loss, gradient, argmax.
template <class T>
__global__ void k_softmax_xent(const T* logits, const std::int32_t* labels, T* dlogits, float* loss, float* correct,
                               std::int64_t B, std::int64_t C) {
  const std::int64_t r = blockIdx.x;
  const T* z = logits + r * C;
  __shared__ float s_max;
  __shared__ int s_arg;
  if (threadIdx.x == 0) {
    int arg = 0;
    for (std::int64_t c = 1; c < C; ++c)
      if (ld(z[c]) > ld(z[arg])) arg = static_cast<int>(c);
    s_arg = arg;
    s_max = C ? ld(z[arg]) : 0.0f;
  }
  __syncthreads();
  float s = 0.0f;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) s += expf(ld(z[c]) - s_max);
  const float logsum = logf(block_sum(s)) + s_max;
  const std::int32_t label = labels[r];
  const bool valid = label >= 0 && label < C;
  if (threadIdx.x == 0 && valid) {
    if (loss) atomicAdd(loss, (logsum - ld(z[label])) / static_cast<float>(B));
    if (correct && s_arg == label) atomicAdd(correct, 1.0f);
  }
  if (dlogits)
    for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x)
      dlogits[r * C + c] =
          st<T>(valid ? (expf(ld(z[c]) - logsum) - (c == label ? 1.0f : 0.0f)) / static_cast<float>(B) : 0.0f);
}

template <class T>
__global__ void k_count_correct(const T* logits, const std::int32_t* labels, float* correct, std::int64_t B,
                                std::int64_t C) {
  GRID_STRIDE(r, B) {
    const T* z = logits + r * C;
    std::int64_t arg = 0;
    for (std::int64_t c = 1; c < C; ++c)
      if (ld(z[c]) > ld(z[arg])) arg = c;
    if (arg == labels[r]) atomicAdd(correct, 1.0f);
  }
}

}  // namespace

void layernorm_forward(const float* x, const float* g, const float* b, float eps, float* y, float* mean, float* rstd,
                       std::int64_t B, std::int64_t D) {
  if (B && D) TROUPE_LAUNCH(k_layernorm, static_cast<unsigned>(B), row_threads(D), x, g, b, eps, y, mean, rstd, D);
}

void layernorm_backward(const float* x, const float* g, const float* mean, const float* rstd, const float* dy,
                        float* dx, float* dg, float* db, std::int64_t B, std::int64_t D, bool accumulate) {
  if (D == 0) return;
  if ((dg || db)) TROUPE_LAUNCH(k_layernorm_dparams, grid(D), kThreads, x, mean, rstd, dy, dg, db, B, D, accumulate);
  if (dx && B) TROUPE_LAUNCH(k_layernorm_dx, static_cast<unsigned>(B), row_threads(D), x, g, mean, rstd, dy, dx, D);
}

void softmax_xent(const float* logits, const std::int32_t* labels, float* dlogits, float* loss, float* correct,
                  std::int64_t B, std::int64_t C) {
  softmax_xent(DType::f32, logits, labels, dlogits, loss, correct, B, C);
}

void softmax_xent(DType t, const void* logits, const std::int32_t* labels, void* dlogits, float* loss, float* correct,
                  std::int64_t B, std::int64_t C) {
  if (loss) TROUPE_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), stream()));
  if (correct) TROUPE_CUDA_CHECK(cudaMemsetAsync(correct, 0, sizeof(float), stream()));
  if (!B) return;
  with_type(t, "softmax_xent", [&](auto v) {
    using T = decltype(v);
    TROUPE_LAUNCH(k_softmax_xent<T>, static_cast<unsigned>(B), row_threads(C), static_cast<const T*>(logits), labels,
                  static_cast<T*>(dlogits), loss, correct, B, C);
  });
}

void count_correct(const float* logits, const std::int32_t* labels, float* correct, std::int64_t B, std::int64_t C) {
  count_correct(DType::f32, logits, labels, correct, B, C);
}

void count_correct(DType t, const void* logits, const std::int32_t* labels, float* correct, std::int64_t B,
                   std::int64_t C) {
  TROUPE_CUDA_CHECK(cudaMemsetAsync(correct, 0, sizeof(float), stream()));
  if (!B) return;
  with_type(t, "count_correct", [&](auto v) {
    using T = decltype(v);
    TROUPE_LAUNCH(k_count_correct<T>, grid(B), kThreads, static_cast<const T*>(logits), labels, correct, B, C);
  });
}


}  // namespace troupe::compute::impl::gpu
