#include <catch2/catch.hpp>

#include <cmath>

#include "actors/nn/layers.hpp"
#include "actors/nn/loss.hpp"
#include "actors/nn/model.hpp"
#include "tests/actors/gradcheck.hpp"

using namespace troupe;
using compute::Tensor;

namespace {
nn::MlpSpec small_spec() {
  nn::MlpSpec s;
  s.inputs = 12;
  s.hidden = {16, 8};
  s.classes = 4;
  s.layernorm = true;
  s.dropout = 0.2f;
  s.activation = nn::Activation::gelu;
  return s;
}
}  // namespace

TEST_CASE("an MLP is initialised from its seed as torch.nn.Linear bounds it", "[model]") {
  auto a = nn::Model::mlp({}, 1), b = nn::Model::mlp({}, 1), c = nn::Model::mlp({}, 2);
  CHECK(a.num_params() == 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10);
  auto pa = a.params(), pb = b.params(), pc = c.params();
  REQUIRE(pa.size() == 6);
  CHECK(pa[0]->name == "0.weight");
  CHECK(pa[5]->name == "4.bias");
  CHECK(pa[0]->value.to_vector() == pb[0]->value.to_vector());
  CHECK(pa[0]->value.to_vector() != pc[0]->value.to_vector());
  auto w = pa[0]->value.to_vector();
  const float bound = 1.0f / std::sqrt(784.0f);
  double mean = 0, sq = 0;
  for (float v : w) {
    REQUIRE(std::abs(v) <= bound);
    mean += v;
    sq += double(v) * v;
  }
  mean /= w.size();
  CHECK(std::abs(mean) < 1e-4);
  CHECK(std::sqrt(sq / w.size()) == Approx(bound / std::sqrt(3.0)).epsilon(0.01));  // uniform's spread
}

TEST_CASE("a model cut into stages gives the whole model's output and gradients", "[model]") {
  auto whole = nn::Model::mlp(small_spec(), 7);
  CHECK(whole.summary().find("layernorm(16)") != std::string::npos);
  auto stages = whole.split({3, 6});
  REQUIRE(stages.size() == 3);
  CHECK(stages[0].size() + stages[1].size() + stages[2].size() == whole.size());
  Tensor x = Tensor::from(troupe::test::random_values(5 * 12, 3), {5, 12});
  Tensor labels = Tensor::from_i32(std::vector<std::int32_t>{0, 1, 2, 3, 1}, {5});
  nn::Mode mode{true, 11};

  nn::Tape tw;
  std::vector<std::size_t> ready;
  whole.zero_grad();
  Tensor logits = whole.forward(x, tw, mode);
  nn::CrossEntropy ce;
  whole.backward(ce.forward_backward(logits, labels), tw, [&](std::size_t i) { ready.push_back(i); });
  // Gradients become final last layer first: the order DDP buckets fill in.
  CHECK(ready == std::vector<std::size_t>{8, 5, 4, 1, 0});

  std::vector<nn::Tape> tapes(3);
  Tensor h = x;
  for (std::size_t k = 0; k < 3; ++k) {
    stages[k].zero_grad();
    h = stages[k].forward(h, tapes[k], mode);
  }
  CHECK(h.to_vector() == logits.to_vector());
  nn::CrossEntropy ce2;
  Tensor g = ce2.forward_backward(h, labels);
  for (std::size_t k = 3; k-- > 0;) g = stages[k].backward(g, tapes[k], {}, k > 0);
  std::vector<nn::Param*> staged;
  for (auto& s : stages)
    for (auto* p : s.params()) staged.push_back(p);
  auto full = whole.params();
  REQUIRE(staged.size() == full.size());
  for (std::size_t i = 0; i < full.size(); ++i) {
    CHECK(staged[i]->name == full[i]->name);
    CHECK(staged[i]->grad.to_vector() == full[i]->grad.to_vector());
  }
}

TEST_CASE("gradients accumulate across backward passes until zero_grad", "[model]") {
  nn::MlpSpec s;
  s.inputs = 6;
  s.hidden = {5};
  s.classes = 3;
  auto m = nn::Model::mlp(s, 3);
  Tensor x = Tensor::from(troupe::test::random_values(12, 4), {2, 6});
  Tensor y = Tensor::from_i32(std::vector<std::int32_t>{0, 2}, {2});
  auto pass = [&]() {
    nn::Tape t;
    nn::CrossEntropy ce;
    m.backward(ce.forward_backward(m.forward(x, t), y), t);
  };
  m.zero_grad();
  pass();
  auto once = m.params()[0]->grad.to_vector();
  pass();
  auto twice = m.params()[0]->grad.to_vector();
  for (std::size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == Approx(2 * once[i]).margin(1e-7));
  m.zero_grad();
  pass();
  CHECK(m.params()[0]->grad.to_vector() == once);
  CHECK_THROWS_WITH(m.split({0}), Catch::Contains("boundaries must ascend"));
}
