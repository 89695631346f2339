// The update rules against PyTorch's, written out by hand for a few steps.
#include <catch2/catch.hpp>

#include <cmath>

#include "actors/optim/optimizer.hpp"
#include "tests/support/enum_words.hpp"

using namespace troupe;
using compute::Tensor;

namespace {

nn::Param param(std::vector<float> v) {
  const auto n = static_cast<std::int64_t>(v.size());
  return {"0.weight", Tensor::from(v, {n}), Tensor::zeros({n}), false};
}

void set_grad(nn::Param& p, std::vector<float> g) {
  p.grad.copy_from(Tensor::from(g, {static_cast<std::int64_t>(g.size())}));
  p.grad_valid = true;
}

}  // namespace

TEST_CASE("SGD with momentum, dampening, Nesterov and weight decay follows torch.optim.SGD", "[optim]") {
  const bool nesterov = GENERATE(false, true);
  const float lr = 0.1f, mom = 0.9f, wd = 0.01f, damp = nesterov ? 0.0f : 0.1f;
  optim::Sgd sgd({lr, mom, damp, wd, nesterov});
  auto p = param({1.0f, -2.0f});
  std::vector<nn::Param*> ps{&p};
  double w[2] = {1.0, -2.0}, buf[2] = {0, 0};
  const float grads[3][2] = {{0.5f, -1.0f}, {0.25f, 2.0f}, {-1.0f, 0.0f}};
  for (int s = 0; s < 3; ++s) {
    set_grad(p, {grads[s][0], grads[s][1]});
    sgd.step(ps);
    for (int i = 0; i < 2; ++i) {
      double d = grads[s][i] + wd * w[i];
      buf[i] = s == 0 ? d : mom * buf[i] + (1 - damp) * d;
      d = nesterov ? d + mom * buf[i] : buf[i];
      w[i] -= lr * d;
    }
    auto got = p.value.to_vector();
    CHECK(got[0] == Approx(w[0]).epsilon(1e-6));
    CHECK(got[1] == Approx(w[1]).epsilon(1e-6));
  }
  CHECK(sgd.state().count("0.weight.momentum") == 1);
  CHECK_THROWS_WITH(optim::Sgd({0.1f, 0.0f, 0.0f, 0.0f, true}), Catch::Contains("nesterov needs a momentum"));
}

TEST_CASE("AdamW follows torch.optim.AdamW (decoupled decay, bias correction)", "[optim]") {
  const float lr = 0.01f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f;
  optim::AdamW adam({lr, b1, b2, eps, wd});
  auto p = param({0.5f, -1.5f, 3.0f});
  std::vector<nn::Param*> ps{&p};
  double w[3] = {0.5, -1.5, 3.0}, m[3] = {}, v[3] = {};
  for (int s = 1; s <= 4; ++s) {
    std::vector<float> g{0.1f * s, -0.3f, 1.0f / s};
    set_grad(p, g);
    adam.step(ps);
    for (int i = 0; i < 3; ++i) {
      w[i] *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[static_cast<std::size_t>(i)];
      v[i] = b2 * v[i] + (1 - b2) * double(g[static_cast<std::size_t>(i)]) * g[static_cast<std::size_t>(i)];
      const double mh = m[i] / (1 - std::pow(b1, s)), vh = v[i] / (1 - std::pow(b2, s));
      w[i] -= lr * mh / (std::sqrt(vh) + eps);
    }
    auto got = p.value.to_vector();
    for (int i = 0; i < 3; ++i) CHECK(got[static_cast<std::size_t>(i)] == Approx(w[i]).epsilon(1e-5));
  }
}

TEST_CASE("a stale gradient reads as zero; clipping scales to the norm", "[optim]") {
  optim::Sgd sgd({0.5f});
  auto p = param({1.0f, 1.0f});
  std::vector<nn::Param*> ps{&p};
  p.grad.fill(123.0f);  // left over from an earlier step
  p.grad_valid = false;
  sgd.step(ps);
  CHECK(p.value.to_vector() == std::vector<float>{1.0f, 1.0f});

  auto a = param({0, 0}), b = param({0});
  set_grad(a, {3.0f, 0.0f});
  set_grad(b, {4.0f});
  std::vector<nn::Param*> ab{&a, &b};
  CHECK(optim::clip_grad_norm(ab, 10.0f) == Approx(5.0f));
  CHECK(a.grad.to_vector()[0] == 3.0f);  // under the limit: untouched
  CHECK(optim::clip_grad_norm(ab, 1.0f) == Approx(5.0f));
  CHECK(a.grad.to_vector()[0] == Approx(0.6f).epsilon(1e-5));
  CHECK(b.grad.to_vector()[0] == Approx(0.8f).epsilon(1e-5));
}

TEST_CASE("learning-rate schedules: warm-up, then constant, cosine or linear", "[optim]") {
  using K = optim::LrSchedule::Kind;
  optim::LrSchedule s{K::cosine, 1.0f, 10, 110, 0.0f};
  CHECK(s.at(0) == Approx(0.1f));
  CHECK(s.at(9) == Approx(1.0f));
  CHECK(s.at(10) == Approx(1.0f));
  CHECK(s.at(60) == Approx(0.5f));
  CHECK(s.at(110) == Approx(0.0f).margin(1e-6));
  CHECK(s.at(500) == Approx(0.0f).margin(1e-6));
  optim::LrSchedule lin{K::linear, 1.0f, 0, 100, 0.1f};
  CHECK(lin.at(50) == Approx(0.55f));
  optim::LrSchedule c{K::constant, 0.3f, 0, 100, 0.0f};
  CHECK(c.at(99) == Approx(0.3f));
  CHECK(optim::LrSchedule::parse("cosine") == K::cosine);
  CHECK_THROWS_WITH(optim::LrSchedule::parse("step"),
                    Catch::Contains("unknown learning-rate schedule 'step': expected constant, cosine or linear"));
}

TEST_CASE("optimizers and schedules are named by words", "[optim]") {
  troupe::test::check_enum_words<optim::Algorithm>("optimizer", "sgd or adamw");
  troupe::test::check_enum_words<optim::LrKind>("learning-rate schedule", "constant, cosine or linear");
  // A checkpoint records the optimizer by the same word.
  CHECK(optim::Sgd(optim::SgdOptions{}).kind() == "sgd");
  CHECK(optim::AdamW(optim::AdamWOptions{}).kind() == "adamw");
}
