// Every operation's forward against a plain reference and its backward
// against finite differences (host kernels; the gpu suite compares devices).
#include <catch2/catch.hpp>

#include <cmath>
#include <thread>

#include "actors/compute/errors.hpp"
#include "actors/compute/ops.hpp"
#include "actors/nn/layers.hpp"
#include "actors/nn/loss.hpp"
#include "tests/actors/gradcheck.hpp"

using namespace troupe;
using compute::Tensor;
using troupe::test::gradcheck;
using troupe::test::random_values;

TEST_CASE("linear forward is x W^T + b, as a plain triple loop computes it", "[ops]") {
  const std::int64_t B = GENERATE(1, 3, 17), in = GENERATE(1, 5, 33), out = GENERATE(1, 7);
  auto xv = random_values(static_cast<std::size_t>(B * in), 1), wv = random_values(static_cast<std::size_t>(out * in), 2),
       bv = random_values(static_cast<std::size_t>(out), 3);
  Tensor x = Tensor::from(xv, {B, in}), w = Tensor::from(wv, {out, in}), b = Tensor::from(bv, {out});
  Tensor y = Tensor::empty({B, out});
  compute::linear_forward(x, w, b, y);
  auto got = y.to_vector();
  for (std::int64_t r = 0; r < B; ++r)
    for (std::int64_t c = 0; c < out; ++c) {
      double s = bv[static_cast<std::size_t>(c)];
      for (std::int64_t k = 0; k < in; ++k) s += double(xv[static_cast<std::size_t>(r * in + k)]) * wv[static_cast<std::size_t>(c * in + k)];
      CHECK(got[static_cast<std::size_t>(r * out + c)] == Approx(s).margin(1e-5));
    }
}

TEST_CASE("gradients of every layer match finite differences", "[ops]") {
  SECTION("linear with and without bias") {
    nn::Linear a(5, 4, true, 7), b(3, 6, false, 8);
    gradcheck(a, Tensor::from(random_values(15, 11), {3, 5}));
    gradcheck(b, Tensor::from(random_values(6, 12), {2, 3}));
  }
  SECTION("relu away from its kink") {
    auto v = random_values(24, 13);
    for (auto& x : v) x = x < 0 ? x - 0.1f : x + 0.1f;
    nn::ReLU relu;
    gradcheck(relu, Tensor::from(v, {4, 6}));
  }
  SECTION("gelu") {
    nn::GELU gelu;
    gradcheck(gelu, Tensor::from(random_values(24, 14, -3, 3), {4, 6}), {}, 1e-2f, 1e-2f);
  }
  SECTION("dropout with a fixed seed") {
    nn::Dropout drop(0.3f, 1);
    gradcheck(drop, Tensor::from(random_values(40, 15), {5, 8}), {true, 42});
  }
  SECTION("layernorm") {
    nn::LayerNorm ln(7);
    // Non-trivial gamma and beta so their gradients and dx depend on them.
    auto params = ln.params();
    params[0]->value.copy_from(Tensor::from(random_values(7, 16, 0.5f, 1.5f), {7}));
    params[1]->value.copy_from(Tensor::from(random_values(7, 17), {7}));
    gradcheck(ln, Tensor::from(random_values(21, 18, -2, 2), {3, 7}), {}, 1e-2f, 3e-2f);
  }
}

TEST_CASE("softmax cross-entropy: loss, gradient and accuracy", "[ops]") {
  const std::int64_t B = 4, C = 5;
  auto zv = random_values(static_cast<std::size_t>(B * C), 21, -3, 3);
  std::vector<std::int32_t> labels{0, 4, 2, 2};
  Tensor z = Tensor::from(zv, {B, C}), y = Tensor::from_i32(labels, {B});
  nn::CrossEntropy ce;
  ce.forward_backward(z, y);
  // Reference: mean of logsumexp(z) - z[label].
  double ref = 0;
  std::int64_t hits = 0;
  for (std::int64_t r = 0; r < B; ++r) {
    double s = 0;
    std::int64_t arg = 0;
    for (std::int64_t c = 0; c < C; ++c) {
      s += std::exp(double(zv[static_cast<std::size_t>(r * C + c)]));
      if (zv[static_cast<std::size_t>(r * C + c)] > zv[static_cast<std::size_t>(r * C + arg)]) arg = c;
    }
    ref += std::log(s) - zv[static_cast<std::size_t>(r * C + labels[static_cast<std::size_t>(r)])];
    hits += arg == labels[static_cast<std::size_t>(r)];
  }
  CHECK(ce.loss() == Approx(ref / B).epsilon(1e-5));
  CHECK(ce.correct() == float(hits));
  // The gradient against finite differences of the loss.
  auto grad = ce.dlogits().to_vector();
  const float eps = 1e-2f;
  for (std::int64_t i = 0; i < B * C; ++i) {
    auto up = zv, down = zv;
    up[static_cast<std::size_t>(i)] += eps;
    down[static_cast<std::size_t>(i)] -= eps;
    nn::CrossEntropy a, b;
    a.forward_backward(Tensor::from(up, {B, C}), y);
    b.forward_backward(Tensor::from(down, {B, C}), y);
    CHECK(grad[static_cast<std::size_t>(i)] == Approx((a.loss() - b.loss()) / (2 * eps)).margin(2e-3));
  }
  CHECK(nn::count_correct(z, y) == hits);
}

TEST_CASE("bad operands are refused with the operand named", "[ops]") {
  Tensor x = Tensor::zeros({2, 3}), w = Tensor::zeros({4, 5}), y = Tensor::zeros({2, 4}), none;
  CHECK_THROWS_WITH(compute::linear_forward(x, w, none, y), Catch::Contains("does not fit weight"));
  nn::CrossEntropy ce;
  CHECK_THROWS_WITH(ce.forward_backward(Tensor::zeros({2, 3}), Tensor::from_i32(std::vector<std::int32_t>{0, 3}, {2})),
                    Catch::Contains("label 3 in row 1"));
  CHECK_THROWS_WITH(ce.forward_backward(Tensor::zeros({2, 3}), Tensor::zeros({2})), Catch::Contains("labels should be i32[2]"));
  CHECK_THROWS_AS(nn::Dropout(1.0f), UsageError);
  CHECK_THROWS_WITH(compute::Device::parse("gpu0"), Catch::Contains("unknown device 'gpu0'"));
}

TEST_CASE("dropout keeps about 1-p of its inputs, scaled, and is the identity outside training", "[ops]") {
  nn::Dropout drop(0.25f);
  nn::Saved s;
  Tensor x = Tensor::empty({100, 100});
  x.fill(1.0f);
  auto y = drop.forward(x, s, {true, 5}).to_vector();
  std::size_t kept = 0;
  for (float v : y) {
    CHECK((v == 0.0f || v == Approx(1.0f / 0.75f)));
    kept += v != 0.0f;
  }
  CHECK(kept > 7200);
  CHECK(kept < 7800);
  CHECK(drop.forward(x, s, {false, 5}).same_storage(x));
  // Same seed, same mask; another seed, another mask.
  CHECK(drop.forward(x, s, {true, 5}).to_vector() == y);
  CHECK(drop.forward(x, s, {true, 6}).to_vector() != y);
}

TEST_CASE("results do not depend on how many threads compute them, nor on concurrent callers", "[ops]") {
  const std::int64_t B = 64, in = 300, out = 520;
  Tensor x = Tensor::from(random_values(static_cast<std::size_t>(B * in), 31), {B, in});
  Tensor w = Tensor::from(random_values(static_cast<std::size_t>(out * in), 32), {out, in});
  Tensor b = Tensor::from(random_values(static_cast<std::size_t>(out), 33), {out});
  Tensor dy = Tensor::from(random_values(static_cast<std::size_t>(B * out), 34), {B, out});
  auto run = [&]() {
    Tensor y = Tensor::empty({B, out}), dx = Tensor::empty({B, in}), dw = Tensor::empty({out, in}), db = Tensor::empty({out});
    compute::linear_forward(x, w, b, y);
    compute::relu_forward(y, y);
    compute::linear_backward(x, w, dy, dx, dw, db, false);
    std::vector<float> all = y.to_vector();
    for (auto* t : {&dx, &dw, &db}) {
      auto v = t->to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  compute::set_num_threads(1);
  const auto one = run();
  compute::set_num_threads(2);
  CHECK(compute::num_threads() == 2);
  const auto two = run();
  REQUIRE(one.size() == two.size());
  for (std::size_t i = 0; i < one.size(); ++i) REQUIRE(two[i] == Approx(one[i]).margin(1e-5));
  // Two callers at once: one gets the pool, the other runs alone; both right.
  std::vector<float> other;
  std::thread t([&]() { other = run(); });
  const auto mine = run();
  t.join();
  for (std::size_t i = 0; i < one.size(); ++i) {
    REQUIRE(mine[i] == Approx(one[i]).margin(1e-5));
    REQUIRE(other[i] == Approx(one[i]).margin(1e-5));
  }
  CHECK_THROWS_AS(compute::set_num_threads(-1), UsageError);
  compute::set_num_threads(1);
}
