#pragma once
// Finite-difference checks of a layer's backward: the loss is sum(y * r) for
// a fixed random r, so d(loss)/dy = r; each input and parameter element is
// nudged both ways and the slope compared with what backward produced.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "actors/nn/layers.hpp"

namespace troupe::test {

inline std::vector<float> random_values(std::size_t n, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  nn::Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.uniform(lo, hi);
  return v;
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

/// Checks layer's input and parameter gradients at x.
inline void gradcheck(nn::Layer& layer, compute::Tensor x, const nn::Mode& mode = {}, float eps = 1e-2f,
                      float tol = 2e-2f) {
  nn::Saved saved;
  compute::Tensor y = layer.forward(x, saved, mode);
  const auto r = random_values(static_cast<std::size_t>(y.numel()), 99);
  compute::Tensor dy = compute::Tensor::from(r, y.shape());
  for (nn::Param* p : layer.params()) p->grad_valid = false;
  compute::Tensor dx = layer.backward(dy, saved, true).clone();
  std::vector<std::vector<float>> pgrads;
  for (nn::Param* p : layer.params()) pgrads.push_back(p->grad.to_vector());

  auto loss = [&]() {
    nn::Saved s2;
    return dot(layer.forward(x, s2, mode).to_vector(), r);
  };
  auto check = [&](compute::Tensor& t, const std::vector<float>& analytic, const char* what) {
    float* p = t.f32();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const float keep = p[i];
      p[i] = keep + eps;
      const double up = loss();
      p[i] = keep - eps;
      const double down = loss();
      p[i] = keep;
      const double numeric = (up - down) / (2.0 * eps);
      INFO(layer.describe() << ": d(loss)/d(" << what << "[" << i << "]) numeric " << numeric << " analytic "
                            << analytic[static_cast<std::size_t>(i)]);
      CHECK(std::abs(numeric - analytic[static_cast<std::size_t>(i)]) <= tol * (1.0 + std::abs(numeric)));
    }
  };
  check(x, dx.to_vector(), "input");
  auto params = layer.params();
  for (std::size_t k = 0; k < params.size(); ++k) check(params[k]->value, pgrads[k], params[k]->name.c_str());
}

}  // namespace troupe::test
