// Device kernels behind ops.hpp: the thread's binding (device, stream, cuBLAS
// handles, cublasLt plans), element-wise and optimizer kernels. The linear
// layer's products are in linear.cu, the row-wise kernels in rows.cu.
// Everything is queued on the thread's bound stream; nothing waits.
#include <cmath>
#include <cstdlib>
#include <map>
#include <tuple>
#include <cstdint>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "actors/compute/cuda/check.hpp"
#include "actors/compute/cuda/kernels.cuh"
#include "actors/compute/hash.hpp"
#include "actors/compute/ops_impl.hpp"
#include "actors/compute/stream.hpp"

namespace troupe::compute::impl::gpu {

using namespace cu;

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
  // Per device: cublasLt, its workspace and plans by (element type, B, in, out).
  std::vector<cublasLtHandle_t> lt;
  std::vector<void*> lt_space;
  std::map<std::tuple<int, int, std::int64_t, std::int64_t, std::int64_t>, LtPlan> plans;
};
thread_local Binding t_bind;

}  // namespace

cudaStream_t cu::stream() { return t_bind.stream; }
int cu::device() { return t_bind.device; }

cublasHandle_t cu::blas() {
  auto& hs = t_bind.handles;
  if (static_cast<int>(hs.size()) <= t_bind.device) hs.resize(static_cast<std::size_t>(t_bind.device) + 1, nullptr);
  auto& h = hs[static_cast<std::size_t>(t_bind.device)];
  if (!h) TROUPE_CUBLAS_CHECK(cublasCreate(&h));
  TROUPE_CUBLAS_CHECK(cublasSetStream(h, t_bind.stream));
  return h;
}

namespace {

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
// (then the caller uses a plain product). Made outside graph capture: the
// first step at a shape plans, later ones reuse. float32 accumulation and
// scale for every element type (the bias has the output's type).
const LtPlan* lt_plan(cudaDataType_t type, std::int64_t B, std::int64_t in, std::int64_t out) {
  auto& bind = t_bind;
  const auto dev = static_cast<std::size_t>(bind.device);
  if (bind.lt.size() <= dev) {
    bind.lt.resize(dev + 1, nullptr);
    bind.lt_space.resize(dev + 1, nullptr);
  }
  auto key = std::tuple{bind.device, static_cast<int>(type), B, in, out};
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
            cublasLtMatrixLayoutCreate(&p.a, type, static_cast<std::uint64_t>(in), static_cast<std::uint64_t>(out), in) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&p.b, type, static_cast<std::uint64_t>(in), static_cast<std::uint64_t>(B), in) == CUBLAS_STATUS_SUCCESS &&
            cublasLtMatrixLayoutCreate(&p.c, type, static_cast<std::uint64_t>(out), static_cast<std::uint64_t>(B), out) == CUBLAS_STATUS_SUCCESS;
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

template <class T>
__global__ void k_relu(const T* x, T* y, std::int64_t n) {
  GRID_STRIDE(i, n) y[i] = ld(x[i]) > 0.0f ? x[i] : st<T>(0.0f);
}
template <class T>
__global__ void k_relu_bwd(const T* y, const T* dy, T* dx, std::int64_t n) {
  GRID_STRIDE(i, n) dx[i] = ld(y[i]) > 0.0f ? dy[i] : st<T>(0.0f);
}
template <class T>
__global__ void k_gelu(const T* xs, T* y, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float x = ld(xs[i]);
    y[i] = st<T>(0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
  }
}
template <class T>
__global__ void k_gelu_bwd(const T* xs, const T* dy, T* dx, std::int64_t n) {
  GRID_STRIDE(i, n) {
    const float x = ld(xs[i]);
    const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    dx[i] = st<T>(ld(dy[i]) * (cdf + x * pdf));
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

}  // namespace

void bind(int device, Stream* s) {
  if (t_bind.device != device) TROUPE_CUDA_CHECK(cudaSetDevice(device));
  t_bind.device = device;
  t_bind.stream = s ? static_cast<cudaStream_t>(s->native()) : cudaStream_t{};
}

bool cu::lt_linear(cudaDataType_t type, const void* x, const void* w, const void* b, void* y, std::int64_t B,
                   std::int64_t in, std::int64_t out) {
  if (!lt_enabled()) return false;
  const LtPlan* p = lt_plan(type, B, in, out);
  if (!p) return false;
  const float one = 1.0f, zero = 0.0f;
  const auto dev = static_cast<std::size_t>(t_bind.device);
  TROUPE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
  TROUPE_CUBLAS_CHECK(cublasLtMatmul(t_bind.lt[dev], p->desc, &one, w, p->a, x, p->b, &zero, y, p->c, y, p->c, &p->algo,
                                     t_bind.lt_space[dev], kLtSpace, stream()));
  return true;
}

void linear_forward(const float* x, const float* w, const float* b, float* y, std::int64_t B, std::int64_t in,
                    std::int64_t out) {
  linear_forward(DType::f32, x, w, b, y, B, in, out);
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, std::int64_t B,
                     std::int64_t in, std::int64_t out, bool accumulate) {
  linear_backward(DType::f32, x, w, dy, dx, dw, db, B, in, out, accumulate);
}

void relu_forward(const float* x, float* y, std::int64_t n) { unary(Unary::relu, DType::f32, x, nullptr, y, n); }
void relu_backward(const float* y, const float* dy, float* dx, std::int64_t n) {
  unary(Unary::relu_backward, DType::f32, y, dy, dx, n);
}
void gelu_forward(const float* x, float* y, std::int64_t n) { unary(Unary::gelu, DType::f32, x, nullptr, y, n); }
void gelu_backward(const float* x, const float* dy, float* dx, std::int64_t n) {
  unary(Unary::gelu_backward, DType::f32, x, dy, dx, n);
}

void unary(Unary op, DType t, const void* a, const void* b, void* out, std::int64_t n) {
  if (!n) return;
  with_type(t, "activation", [&](auto v) {
    using T = decltype(v);
    const auto* pa = static_cast<const T*>(a);
    const auto* pb = static_cast<const T*>(b);
    auto* po = static_cast<T*>(out);
    switch (op) {
      case Unary::relu: TROUPE_LAUNCH(k_relu<T>, grid(n), kThreads, pa, po, n); break;
      case Unary::relu_backward: TROUPE_LAUNCH(k_relu_bwd<T>, grid(n), kThreads, pa, pb, po, n); break;
      case Unary::gelu: TROUPE_LAUNCH(k_gelu<T>, grid(n), kThreads, pa, po, n); break;
      case Unary::gelu_backward: TROUPE_LAUNCH(k_gelu_bwd<T>, grid(n), kThreads, pa, pb, po, n); break;
    }
  });
}
void dropout_forward(const float* x, float p, std::uint64_t seed, float* y, float* mask, std::int64_t n) {
  if (n) TROUPE_LAUNCH(k_dropout, grid(n), kThreads, x, p, seed, y, mask, n);
}
void mul(const float* a, const float* b, float* out, std::int64_t n) {
  if (n) TROUPE_LAUNCH(k_mul, grid(n), kThreads, a, b, out, n);
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
