// Device kernels behind ops.hpp: cuBLAS for the products, CUDA C++ for the
// rest. Everything is queued on the thread's bound stream; nothing waits.
#include <cmath>
#include <cstdlib>
#include <map>
#include <tuple>
#include <cstdint>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "actors/compute/cuda/check.hpp"
#include "actors/compute/hash.hpp"
#include "actors/compute/ops_impl.hpp"
#include "actors/compute/stream.hpp"

namespace troupe::compute::impl::gpu {

namespace {

// linear_forward through cublasLt with the bias in the epilogue (one kernel,
// no bias broadcast, no read of y), one plan per shape, found once.
struct LtPlan {
  bool ok = false;
  cublasLtMatmulDesc_t desc{};
  cublasLtMatrixLayout_t a{}, b{}, c{};
  cublasLtMatmulAlgo_t algo{};
};

struct Binding {
  int device = -1;
  cudaStream_t stream{};
  std::vector<cublasHandle_t> handles;  // per device, made on first use
  // Per device: a vector of ones, for column sums as a matrix-vector product.
  std::vector<std::pair<float*, std::int64_t>> ones;
  // Per device: cublasLt, its workspace and plans by (B, in, out).
  std::vector<cublasLtHandle_t> lt;
  std::vector<void*> lt_space;
  std::map<std::tuple<int, std::int64_t, std::int64_t, std::int64_t>, LtPlan> plans;
};
thread_local Binding t_bind;

cudaStream_t stream() { return t_bind.stream; }

cublasHandle_t blas() {
  auto& hs = t_bind.handles;
  if (static_cast<int>(hs.size()) <= t_bind.device) hs.resize(static_cast<std::size_t>(t_bind.device) + 1, nullptr);
  auto& h = hs[static_cast<std::size_t>(t_bind.device)];
  if (!h) TROUPE_CUBLAS_CHECK(cublasCreate(&h));
  TROUPE_CUBLAS_CHECK(cublasSetStream(h, t_bind.stream));
  return h;
}

__global__ void k_fill(float* p, std::int64_t n, float v);

// At least n ones on the bound device. Grows outside any graph capture: the
// first step at a batch size allocates, later ones (and captured ones) reuse.
const float* ones(std::int64_t n) {
  auto& os = t_bind.ones;
  if (static_cast<int>(os.size()) <= t_bind.device) os.resize(static_cast<std::size_t>(t_bind.device) + 1, {nullptr, 0});
  auto& [p, len] = os[static_cast<std::size_t>(t_bind.device)];
  if (len < n) {
    if (p) TROUPE_CUDA_CHECK(cudaFree(p));
    p = nullptr;
    len = 0;
    const std::int64_t want = std::max<std::int64_t>(n, 1024);
    TROUPE_CUDA_CHECK(cudaMalloc(&p, static_cast<std::size_t>(want) * sizeof(float)));
    k_fill<<<static_cast<unsigned>((want + 255) / 256), 256, 0, t_bind.stream>>>(p, want, 1.0f);
    TROUPE_CUDA_CHECK(cudaGetLastError());
    len = want;
  }
  return p;
}

constexpr std::size_t kLtSpace = 32u << 20;

// TROUPE_CUBLASLT=0 turns the fused path off (for comparisons).
bool lt_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("TROUPE_CUBLASLT");
    return !(v && v[0] == '0');
  }();
  return on;
}

// The plan for y[B, out] = x[B, in] W^T + b, or nullptr when cublasLt has none
// (then the caller uses sgemm). Made outside graph capture: the first step at
// a shape plans, later ones reuse.
const LtPlan* lt_plan(std::int64_t B, std::int64_t in, std::int64_t out) {
  auto& bind = t_bind;
  const auto dev = static_cast<std::size_t>(bind.device);
  if (bind.lt.size() <= dev) {
    bind.lt.resize(dev + 1, nullptr);
    bind.lt_space.resize(dev + 1, nullptr);
  }
  auto key = std::tuple{bind.device, B, in, out};
  auto it = bind.plans.find(key);
  if (it != bind.plans.end()) return it->second.ok ? &it->second : nullptr;
  LtPlan& p = bind.plans[key];
  if (!bind.lt[dev]) {
    if (cublasLtCreate(&bind.lt[dev]) != CUBLAS_STATUS_SUCCESS) return nullptr;
    TROUPE_CUDA_CHECK(cudaMalloc(&bind.lt_space[dev], kLtSpace));
  }
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
  bool ok = cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi) == CUBLAS_STATUS_SUCCESS &&
            // Column-major: W is in x out (ld in), x is in x B (ld in), y is out x B (ld out).
            cublasLtMatrixLayoutCreate(&p.a, CUDA_R_32F, static_cast<std::uint64_t>(in), static_cast<std::uint64_t>(out), in) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&p.b, CUDA_R_32F, static_cast<std::uint64_t>(in), static_cast<std::uint64_t>(B), in) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, static_cast<std::uint64_t>(out), static_cast<std::uint64_t>(B), out) == CUBLAS_STATUS_SUCCESS;
  if (ok) {
    cublasLtMatmulPreference_t pref{};
    std::size_t space = kLtSpace;
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    ok = cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &space, sizeof space) ==
             CUBLAS_STATUS_SUCCESS &&
         cublasLtMatmulAlgoGetHeuristic(bind.lt[dev], p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found) ==
             CUBLAS_STATUS_SUCCESS &&
         found > 0;
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ok) p.algo = result.algo;
  }
  p.ok = ok;
  return ok ? &p : nullptr;
}

constexpr int kThreads = 256;
unsigned grid(std::int64_t n) {
  return static_cast<unsigned>(std::max<std::int64_t>(1, std::min<std::int64_t>((n + kThreads - 1) / kThreads, 65535)));
}

#define TROUPE_LAUNCH(kernel, blocks, threads, ...)                  \
  do {                                                               \
    kernel<<<(blocks), (threads), 0, stream()>>>(__VA_ARGS__);       \
    TROUPE_CUDA_CHECK(cudaGetLastError());                           \
  } while (0)

#define GRID_STRIDE(i, n) \
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < (n); i += std::int64_t(gridDim.x) * blockDim.x)

__global__ void k_bias_rows(float* y, const float* b, std::int64_t B, std::int64_t out) {
  GRID_STRIDE(i, B * out) y[i] = b[i % out];
}
__global__ void k_fill(float* p, std::int64_t n, float v) { GRID_STRIDE(i, n) p[i] = v; }
__global__ void k_relu(const float* x, float* y, std::int64_t n) { GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f; }
__global__ void k_relu_bwd(const float* y, const float* dy, float* dx, std::int64_t n) {
  GRID_STRIDE(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
__global__ void k_gelu(const float* x, float* y, std::int64_t n) {
  GRID_STRIDE(i, n) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
__global__ void k_gelu_bwd(const float* x, const float* dy, float* dx, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
    const float pdf = 0.39894228040143268f * expf(-0.5f * x[i] * x[i]);
    dx[i] = dy[i] * (cdf + x[i] * pdf);
  }
}
__global__ void k_dropout(const float* x, float p, std::uint64_t seed, float* y, float* mask, std::int64_t n) {
  const float keep = 1.0f / (1.0f - p);
  GRID_STRIDE(i, n) {
    const float m = detail::uniform01(seed, static_cast<std::uint64_t>(i)) >= p ? keep : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  }
}
__global__ void k_mul(const float* a, const float* b, float* o, std::int64_t n) { GRID_STRIDE(i, n) o[i] = a[i] * b[i]; }

// Block-wide sum (blockDim.x a multiple of 32, at most 1024).
__device__ float block_sum(float v) {
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
__global__ void k_softmax_xent(const float* logits, const std::int32_t* labels, float* dlogits, float* loss,
                               float* correct, std::int64_t B, std::int64_t C) {
  const std::int64_t r = blockIdx.x;
  const float* z = logits + r * C;
  __shared__ float s_max;
  __shared__ int s_arg;
  if (threadIdx.x == 0) {
    int arg = 0;
    for (std::int64_t c = 1; c < C; ++c)
      if (z[c] > z[arg]) arg = static_cast<int>(c);
    s_arg = arg;
    s_max = C ? z[arg] : 0.0f;
  }
  __syncthreads();
  float s = 0.0f;
  for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x) s += expf(z[c] - s_max);
  const float logsum = logf(block_sum(s)) + s_max;
  const std::int32_t label = labels[r];
  const bool valid = label >= 0 && label < C;
  if (threadIdx.x == 0 && valid) {
    if (loss) atomicAdd(loss, (logsum - z[label]) / static_cast<float>(B));
    if (correct && s_arg == label) atomicAdd(correct, 1.0f);
  }
  if (dlogits)
    for (std::int64_t c = threadIdx.x; c < C; c += blockDim.x)
      dlogits[r * C + c] = valid ? (expf(z[c] - logsum) - (c == label ? 1.0f : 0.0f)) / static_cast<float>(B) : 0.0f;
}

__global__ void k_count_correct(const float* logits, const std::int32_t* labels, float* correct, std::int64_t B,
                                std::int64_t C) {
  GRID_STRIDE(r, B) {
    const float* z = logits + r * C;
    std::int64_t arg = 0;
    for (std::int64_t c = 1; c < C; ++c)
      if (z[c] > z[arg]) arg = c;
    if (arg == labels[r]) atomicAdd(correct, 1.0f);
  }
}

__global__ void k_sgd(float* p, const float* g, float* buf, std::int64_t n, float lr, float momentum, float dampening,
                      bool nesterov, float wd, bool first) {
  GRID_STRIDE(i, n) {
    float d = g[i] + wd * p[i];
    if (momentum != 0.0f) {
      buf[i] = first ? d : momentum * buf[i] + (1.0f - dampening) * d;
      d = nesterov ? d + momentum * buf[i] : buf[i];
    }
    p[i] -= lr * d;
  }
}

__global__ void k_adamw(float* p, const float* g, float* m, float* v, std::int64_t n, float lr, float b1, float b2,
                        float eps, float decay, float step_size, float c2_sqrt) {
  GRID_STRIDE(i, n) {
    p[i] *= decay;
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= step_size * m[i] / (sqrtf(v[i]) / c2_sqrt + eps);
  }
}

__global__ void k_sum_squares(const float* t, std::int64_t n, float* out) {
  float s = 0.0f;
  GRID_STRIDE(i, n) s += t[i] * t[i];
  s = block_sum(s);
  if (threadIdx.x == 0) atomicAdd(out, s);
}
__global__ void k_scale(float* t, std::int64_t n, float f) { GRID_STRIDE(i, n) t[i] *= f; }
__global__ void k_axpy(float* y, const float* x, std::int64_t n, float a) { GRID_STRIDE(i, n) y[i] += a * x[i]; }

int row_threads(std::int64_t D) {
  int t = 32;
  while (t < 1024 && t < D) t *= 2;
  return t;
}

}  // namespace

void bind(int device, Stream* s) {
  if (t_bind.device != device) TROUPE_CUDA_CHECK(cudaSetDevice(device));
  t_bind.device = device;
  t_bind.stream = s ? static_cast<cudaStream_t>(s->native()) : cudaStream_t{};
}

void linear_forward(const float* x, const float* w, const float* b, float* y, std::int64_t B, std::int64_t in,
                    std::int64_t out) {
  if (B == 0 || out == 0) return;
  if (b && in > 0 && lt_enabled()) {
    if (const LtPlan* p = lt_plan(B, in, out)) {
      const float one = 1.0f, zero = 0.0f;
      const auto dev = static_cast<std::size_t>(t_bind.device);
      TROUPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
      TROUPE_CUBLAS_CHECK(cublasLtMatmul(t_bind.lt[dev], p->desc, &one, w, p->a, x, p->b, &zero, y, p->c, y, p->c,
                                         &p->algo, t_bind.lt_space[dev], kLtSpace, stream()));
      return;
    }
  }
  float beta = 0.0f;
  if (b) {
    TROUPE_LAUNCH(k_bias_rows, grid(B * out), kThreads, y, b, B, out);
    beta = 1.0f;
  }
  if (in == 0) {
    if (!b) TROUPE_CUDA_CHECK(cudaMemsetAsync(y, 0, static_cast<std::size_t>(B * out) * sizeof(float), stream()));
    return;
  }
  const float one = 1.0f;
  TROUPE_CUBLAS_CHECK(cublasSgemm(blas(), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(B),
                                  static_cast<int>(in), &one, w, static_cast<int>(in), x, static_cast<int>(in), &beta, y,
                                  static_cast<int>(out)));
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, std::int64_t B,
                     std::int64_t in, std::int64_t out, bool accumulate) {
  const float one = 1.0f, zero = 0.0f;
  const int iB = static_cast<int>(B), iin = static_cast<int>(in), iout = static_cast<int>(out);
  if (dw && in > 0 && out > 0) {
    if (B == 0) {
      if (!accumulate) TROUPE_CUDA_CHECK(cudaMemsetAsync(dw, 0, static_cast<std::size_t>(in * out) * sizeof(float), stream()));
    } else {
      TROUPE_CUBLAS_CHECK(cublasSgemm(blas(), CUBLAS_OP_N, CUBLAS_OP_T, iin, iout, iB, &one, x, iin, dy, iout,
                                      accumulate ? &one : &zero, dw, iin));
    }
  }
  if (db && out > 0) {
    // db = dy^T 1: dy (B x out, row-major) is an out x B column-major matrix.
    if (B == 0) {
      if (!accumulate) TROUPE_CUDA_CHECK(cudaMemsetAsync(db, 0, static_cast<std::size_t>(out) * sizeof(float), stream()));
    } else {
      TROUPE_CUBLAS_CHECK(cublasSgemv(blas(), CUBLAS_OP_N, iout, iB, &one, dy, iout, ones(B), 1,
                                      accumulate ? &one : &zero, db, 1));
    }
  }
  if (dx && B > 0 && in > 0) {
    if (out == 0) {
      TROUPE_CUDA_CHECK(cudaMemsetAsync(dx, 0, static_cast<std::size_t>(B * in) * sizeof(float), stream()));
    } else {
      TROUPE_CUBLAS_CHECK(cublasSgemm(blas(), CUBLAS_OP_N, CUBLAS_OP_N, iin, iB, iout, &one, w, iin, dy, iout, &zero, dx, iin));
    }
  }
}

void relu_forward(const float* x, float* y, std::int64_t n) {
  if (n) TROUPE_LAUNCH(k_relu, grid(n), kThreads, x, y, n);
}
void relu_backward(const float* y, const float* dy, float* dx, std::int64_t n) {
  if (n) TROUPE_LAUNCH(k_relu_bwd, grid(n), kThreads, y, dy, dx, n);
}
void gelu_forward(const float* x, float* y, std::int64_t n) {
  if (n) TROUPE_LAUNCH(k_gelu, grid(n), kThreads, x, y, n);
}
void gelu_backward(const float* x, const float* dy, float* dx, std::int64_t n) {
  if (n) TROUPE_LAUNCH(k_gelu_bwd, grid(n), kThreads, x, dy, dx, n);
}
void dropout_forward(const float* x, float p, std::uint64_t seed, float* y, float* mask, std::int64_t n) {
  if (n) TROUPE_LAUNCH(k_dropout, grid(n), kThreads, x, p, seed, y, mask, n);
}
void mul(const float* a, const float* b, float* out, std::int64_t n) {
  if (n) TROUPE_LAUNCH(k_mul, grid(n), kThreads, a, b, out, n);
}

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
  if (loss) TROUPE_CUDA_CHECK(cudaMemsetAsync(loss, 0, sizeof(float), stream()));
  if (correct) TROUPE_CUDA_CHECK(cudaMemsetAsync(correct, 0, sizeof(float), stream()));
  if (B) TROUPE_LAUNCH(k_softmax_xent, static_cast<unsigned>(B), row_threads(C), logits, labels, dlogits, loss, correct, B, C);
}

void count_correct(const float* logits, const std::int32_t* labels, float* correct, std::int64_t B, std::int64_t C) {
  TROUPE_CUDA_CHECK(cudaMemsetAsync(correct, 0, sizeof(float), stream()));
  if (B) TROUPE_LAUNCH(k_count_correct, grid(B), kThreads, logits, labels, correct, B, C);
}

void sgd_update(float* p, const float* g, float* buf, std::int64_t n, float lr, float momentum, float dampening,
                bool nesterov, float wd, bool first) {
  if (n) TROUPE_LAUNCH(k_sgd, grid(n), kThreads, p, g, buf, n, lr, momentum, dampening, nesterov, wd, first);
}

void adamw_update(float* p, const float* g, float* m, float* v, std::int64_t n, float lr, float b1, float b2, float eps,
                  float wd, std::int64_t step) {
  const float c1 = 1.0f - std::pow(b1, static_cast<float>(step));
  const float c2 = 1.0f - std::pow(b2, static_cast<float>(step));
  if (n) TROUPE_LAUNCH(k_adamw, grid(n), kThreads, p, g, m, v, n, lr, b1, b2, eps, 1.0f - lr * wd, lr / c1, std::sqrt(c2));
}

void sum_squares(const float* t, std::int64_t n, float* out) {
  if (n) TROUPE_LAUNCH(k_sum_squares, std::min(grid(n), 1024u), kThreads, t, n, out);
}
void scale(float* t, std::int64_t n, float f) {
  if (n) TROUPE_LAUNCH(k_scale, grid(n), kThreads, t, n, f);
}
void axpy(float* y, const float* x, std::int64_t n, float alpha) {
  if (n) TROUPE_LAUNCH(k_axpy, grid(n), kThreads, y, x, n, alpha);
}

}  // namespace troupe::compute::impl::gpu
