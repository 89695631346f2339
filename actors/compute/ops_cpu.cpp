// Host kernels: OpenBLAS for the products, plain loops (vectorised by the
// compiler, built with -O3) for the rest. Reductions accumulate in double
// where a float sum over a batch would lose digits.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/compute/hash.hpp"
#include "actors/compute/ops_impl.hpp"
#include "actors/compute/parallel.hpp"

namespace troupe::compute::impl::cpu {

namespace {
constexpr std::int64_t kGrain = 1 << 14;  // elements per part: below it a loop is not worth splitting

// Element-wise loop body over [b, e), split across the compute threads.
template <class F>
void each(std::int64_t n, F&& body) {
  compute::detail::parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) body(i);
  });
}
}  // namespace

// The products run single-threaded in OpenBLAS, split here across the compute
// threads by output block: one pool of threads, not OpenBLAS's and ours
// competing for the same cores. Blocks are multiples of 16 columns.
namespace {

// other: the product's size along the dimensions not split (rows x depth);
// a part gets at least 2^16 multiply-adds (16-column blocks x other).
template <class F>
void split_columns(std::int64_t cols, std::int64_t other, F&& f) {
  const std::int64_t min_blocks = std::max<std::int64_t>(1, (1 << 12) / std::max<std::int64_t>(other, 1));
  compute::detail::parallel_for((cols + 15) / 16, min_blocks, [&](std::int64_t b, std::int64_t e) {
    const std::int64_t c0 = b * 16, c1 = std::min(cols, e * 16);
    if (c0 < c1) f(c0, c1);
  });
}

int I(std::int64_t v) { return static_cast<int>(v); }

}  // namespace

void linear_forward(const float* x, const float* w, const float* b, float* y, std::int64_t B, std::int64_t in,
                    std::int64_t out) {
  if (B == 0 || out == 0) return;
  // Each block of output features: the bias goes in first and the product adds to it (no second pass).
  split_columns(out, B * in, [&](std::int64_t c0, std::int64_t c1) {
    const std::int64_t n = c1 - c0;
    if (b) {
      for (std::int64_t r = 0; r < B; ++r) std::memcpy(y + r * out + c0, b + c0, static_cast<std::size_t>(n) * sizeof(float));
    } else if (in == 0) {
      for (std::int64_t r = 0; r < B; ++r) std::fill_n(y + r * out + c0, n, 0.0f);
    }
    if (in > 0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, I(B), I(n), I(in), 1.0f, x, I(in), w + c0 * in, I(in),
                  b ? 1.0f : 0.0f, y + c0, I(out));
  });
}

void linear_backward(const float* x, const float* w, const float* dy, float* dx, float* dw, float* db, std::int64_t B,
                     std::int64_t in, std::int64_t out, bool accumulate) {
  if ((dw || db) && out > 0) {
    // dw[c0:c1, :] (+)= dy[:, c0:c1]^T x ; db[c0:c1] (+)= column sums of dy
    split_columns(out, B * in, [&](std::int64_t c0, std::int64_t c1) {
      const std::int64_t n = c1 - c0;
      if (dw && in > 0) {
        if (B == 0) {
          if (!accumulate) std::fill_n(dw + c0 * in, n * in, 0.0f);
        } else {
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, I(n), I(in), I(B), 1.0f, dy + c0, I(out), x, I(in),
                      accumulate ? 1.0f : 0.0f, dw + c0 * in, I(in));
        }
      }
      if (db) {
        if (!accumulate) std::fill(db + c0, db + c1, 0.0f);
        for (std::int64_t r = 0; r < B; ++r) {
          const float* row = dy + r * out;
          for (std::int64_t c = c0; c < c1; ++c) db[c] += row[c];
        }
      }
    });
  }
  if (dx && B > 0 && in > 0) {
    // dx[:, k0:k1] = dy w[:, k0:k1]
    split_columns(in, B * out, [&](std::int64_t k0, std::int64_t k1) {
      const std::int64_t n = k1 - k0;
      if (out == 0) {
        for (std::int64_t r = 0; r < B; ++r) std::fill_n(dx + r * in + k0, n, 0.0f);
        return;
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, I(B), I(n), I(out), 1.0f, dy, I(out), w + k0, I(in), 0.0f,
                  dx + k0, I(in));
    });
  }
}

void relu_forward(const float* x, float* y, std::int64_t n) {
  each(n, [=](std::int64_t i) { y[i] = x[i] > 0.0f ? x[i] : 0.0f; });
}

void relu_backward(const float* y, const float* dy, float* dx, std::int64_t n) {
  each(n, [=](std::int64_t i) { dx[i] = y[i] > 0.0f ? dy[i] : 0.0f; });
}

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
}  // namespace

void gelu_forward(const float* x, float* y, std::int64_t n) {
  each(n, [=](std::int64_t i) { y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2)); });
}

void gelu_backward(const float* x, const float* dy, float* dx, std::int64_t n) {
  each(n, [=](std::int64_t i) {
    const float cdf = 0.5f * (1.0f + std::erf(x[i] * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * std::exp(-0.5f * x[i] * x[i]);
    dx[i] = dy[i] * (cdf + x[i] * pdf);
  });
}

void dropout_forward(const float* x, float p, std::uint64_t seed, float* y, float* mask, std::int64_t n) {
  const float keep = 1.0f / (1.0f - p);
  each(n, [=](std::int64_t i) {
    const float m = detail::uniform01(seed, static_cast<std::uint64_t>(i)) >= p ? keep : 0.0f;
    mask[i] = m;
    y[i] = x[i] * m;
  });
}

void mul(const float* a, const float* b, float* out, std::int64_t n) {
  each(n, [=](std::int64_t i) { out[i] = a[i] * b[i]; });
}

void layernorm_forward(const float* x, const float* g, const float* b, float eps, float* y, float* mean, float* rstd,
                       std::int64_t B, std::int64_t D) {
  for (std::int64_t r = 0; r < B; ++r) {
    const float* xr = x + r * D;
    double s = 0;
    for (std::int64_t i = 0; i < D; ++i) s += xr[i];
    const double mu = D ? s / static_cast<double>(D) : 0.0;
    double v = 0;
    for (std::int64_t i = 0; i < D; ++i) v += (xr[i] - mu) * (xr[i] - mu);
    const float rs = static_cast<float>(1.0 / std::sqrt((D ? v / static_cast<double>(D) : 0.0) + eps));
    mean[r] = static_cast<float>(mu);
    rstd[r] = rs;
    float* yr = y + r * D;
    for (std::int64_t i = 0; i < D; ++i) yr[i] = (xr[i] - static_cast<float>(mu)) * rs * g[i] + b[i];
  }
}

void layernorm_backward(const float* x, const float* g, const float* mean, const float* rstd, const float* dy,
                        float* dx, float* dg, float* db, std::int64_t B, std::int64_t D, bool accumulate) {
  if (!accumulate) {
    if (dg) std::fill_n(dg, D, 0.0f);
    if (db) std::fill_n(db, D, 0.0f);
  }
  for (std::int64_t r = 0; r < B; ++r) {
    const float* xr = x + r * D;
    const float* dyr = dy + r * D;
    const float mu = mean[r], rs = rstd[r];
    // dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gamma
    double sum_dxhat = 0, sum_dxhat_xhat = 0;
    for (std::int64_t i = 0; i < D; ++i) {
      const float xhat = (xr[i] - mu) * rs;
      const float dxhat = dyr[i] * g[i];
      sum_dxhat += dxhat;
      sum_dxhat_xhat += static_cast<double>(dxhat) * xhat;
      if (dg) dg[i] += dyr[i] * xhat;
      if (db) db[i] += dyr[i];
    }
    if (!dx) continue;
    const float m1 = static_cast<float>(sum_dxhat / static_cast<double>(D));
    const float m2 = static_cast<float>(sum_dxhat_xhat / static_cast<double>(D));
    float* dxr = dx + r * D;
    for (std::int64_t i = 0; i < D; ++i) {
      const float xhat = (xr[i] - mu) * rs;
      dxr[i] = rs * (dyr[i] * g[i] - m1 - xhat * m2);
    }
  }
}

namespace {
void check_label(std::int32_t label, std::int64_t row, std::int64_t C) {
  if (label < 0 || label >= C)
    throw ShapeError(fmt::format("label {} in row {} is outside the {} classes [0, {})", label, row, C, C));
}
}  // namespace

void softmax_xent(const float* logits, const std::int32_t* labels, float* dlogits, float* loss, float* correct,
                  std::int64_t B, std::int64_t C) {
  double total = 0;
  std::int64_t hits = 0;
  const float invB = B ? 1.0f / static_cast<float>(B) : 0.0f;
  for (std::int64_t r = 0; r < B; ++r) {
    const float* z = logits + r * C;
    check_label(labels[r], r, C);
    std::int64_t arg = 0;
    for (std::int64_t c = 1; c < C; ++c)
      if (z[c] > z[arg]) arg = c;
    const float mx = z[arg];
    double s = 0;
    for (std::int64_t c = 0; c < C; ++c) s += std::exp(static_cast<double>(z[c] - mx));
    const double logsum = std::log(s) + mx;
    total += logsum - z[labels[r]];
    hits += arg == labels[r];
    if (dlogits) {
      float* d = dlogits + r * C;
      for (std::int64_t c = 0; c < C; ++c)
        d[c] = (static_cast<float>(std::exp(static_cast<double>(z[c]) - logsum)) - (c == labels[r] ? 1.0f : 0.0f)) * invB;
    }
  }
  if (loss) loss[0] = B ? static_cast<float>(total / static_cast<double>(B)) : 0.0f;
  if (correct) correct[0] = static_cast<float>(hits);
}

void count_correct(const float* logits, const std::int32_t* labels, float* correct, std::int64_t B, std::int64_t C) {
  std::int64_t hits = 0;
  for (std::int64_t r = 0; r < B; ++r) {
    const float* z = logits + r * C;
    std::int64_t arg = 0;
    for (std::int64_t c = 1; c < C; ++c)
      if (z[c] > z[arg]) arg = c;
    hits += arg == labels[r];
  }
  correct[0] = static_cast<float>(hits);
}

void sgd_update(float* p, const float* g, float* buf, std::int64_t n, float lr, float momentum, float dampening,
                bool nesterov, float wd, bool first) {
  if (momentum == 0.0f) {
    each(n, [=](std::int64_t i) { p[i] -= lr * (g[i] + wd * p[i]); });
    return;
  }
  each(n, [=](std::int64_t i) {
    float d = g[i] + wd * p[i];
    buf[i] = first ? d : momentum * buf[i] + (1.0f - dampening) * d;
    d = nesterov ? d + momentum * buf[i] : buf[i];
    p[i] -= lr * d;
  });
}

void adamw_update(float* p, const float* g, float* m, float* v, std::int64_t n, float lr, float b1, float b2, float eps,
                  float wd, std::int64_t step) {
  const float c1 = 1.0f - std::pow(b1, static_cast<float>(step));
  const float c2 = 1.0f - std::pow(b2, static_cast<float>(step));
  const float step_size = lr / c1;
  const float c2_sqrt = std::sqrt(c2);
  const float decay = 1.0f - lr * wd;
  each(n, [=](std::int64_t i) {
    p[i] *= decay;
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    p[i] -= step_size * m[i] / (std::sqrt(v[i]) / c2_sqrt + eps);
  });
}

void sum_squares(const float* t, std::int64_t n, float* out) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(t[i]) * t[i];
  out[0] += static_cast<float>(s);
}

void scale(float* t, std::int64_t n, float f) {
  each(n, [=](std::int64_t i) { t[i] *= f; });
}

void axpy(float* y, const float* x, std::int64_t n, float alpha) {
  each(n, [=](std::int64_t i) { y[i] += alpha * x[i]; });
}

}  // namespace troupe::compute::impl::cpu
