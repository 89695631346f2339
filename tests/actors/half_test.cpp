// bf16 and fp16 on the host: the conversions round to nearest even exactly as
// the device does, casts between tensors, and the operations that need a
// device say so instead of computing wrong.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "actors/compute/half.hpp"
#include "actors/compute/ops.hpp"
#include "actors/nn/layers.hpp"
#include "actors/nn/model.hpp"

using namespace troupe;
using compute::DType;
using compute::Tensor;

namespace {
// Every bit pattern of a half type that is not NaN converts back unchanged.
template <class To, class From>
void every_pattern_round_trips(const char* type, To to, From from) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float f = from(static_cast<std::uint16_t>(b));
    if (std::isnan(f)) continue;
    INFO(type << " " << std::hex << b);
    REQUIRE(to(f) == b);
  }
}

float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace

TEST_CASE("bf16: round to nearest even, infinities and NaN kept", "[half]") {
  using compute::from_bf16;
  using compute::to_bf16;
  CHECK(to_bf16(1.0f) == 0x3F80);
  CHECK(to_bf16(-2.5f) == 0xC020);
  CHECK(to_bf16(0.0f) == 0x0000);
  CHECK(to_bf16(-0.0f) == 0x8000);
  CHECK(to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3F80);  // halfway: to the even one below
  CHECK(to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3F81);  // past halfway: up
  CHECK(to_bf16(1.0f + std::ldexp(1.0f, -7) + std::ldexp(1.0f, -8)) == 0x3F82);  // halfway from odd: up to even
  CHECK(to_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds past the largest bf16
  CHECK(std::isnan(from_bf16(to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(std::isnan(from_bf16(to_bf16(bits_float(0x7F800001u)))));  // a NaN whose payload would round to infinity
  every_pattern_round_trips("bf16", to_bf16, from_bf16);
}

TEST_CASE("fp16: round to nearest even, subnormals, overflow to infinity", "[half]") {
  using compute::from_f16;
  using compute::to_f16;
  CHECK(to_f16(1.0f) == 0x3C00);
  CHECK(to_f16(-2.0f) == 0xC000);
  CHECK(to_f16(0.1f) == 0x2E66);
  CHECK(to_f16(65504.0f) == 0x7BFF);                // the largest
  CHECK(to_f16(65519.0f) == 0x7BFF);                // below halfway to the next step
  CHECK(to_f16(65520.0f) == 0x7C00);                // halfway: to infinity (the even side)
  CHECK(to_f16(1e6f) == 0x7C00);
  CHECK(to_f16(-1e6f) == 0xFC00);
  CHECK(to_f16(std::ldexp(1.0f, -14)) == 0x0400);   // the smallest normal
  CHECK(to_f16(std::ldexp(1.0f, -24)) == 0x0001);   // the smallest subnormal
  CHECK(to_f16(std::ldexp(1.0f, -25)) == 0x0000);   // halfway to it: to even (zero)
  CHECK(to_f16(std::ldexp(3.0f, -25)) == 0x0002);   // 1.5 steps: to even (two)
  CHECK(to_f16(-0.0f) == 0x8000);
  CHECK(std::isnan(from_f16(to_f16(std::numeric_limits<float>::quiet_NaN()))));
  CHECK(from_f16(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(from_f16(0x0001) == std::ldexp(1.0f, -24));
  every_pattern_round_trips("f16", to_f16, from_f16);
}

TEST_CASE("half tensors on the host: cast both ways, accumulate, read back, zero", "[half]") {
  Tensor x = Tensor::from({1.0f, -0.3f, 1000.5f, 1e-3f, 70000.0f}, {5});
  Tensor b = compute::cast_to(x, DType::bf16);
  Tensor h = compute::cast_to(x, DType::f16);
  CHECK(b.dtype() == DType::bf16);
  CHECK(b.nbytes() == 10);
  const auto bv = b.to_vector(), hv = h.to_vector();
  const auto xv = x.to_vector();
  for (std::size_t i = 0; i < xv.size(); ++i) {
    CHECK(bv[i] == compute::from_bf16(compute::to_bf16(xv[i])));
    CHECK(hv[i] == compute::from_f16(compute::to_f16(xv[i])));
  }
  CHECK(hv[4] == std::numeric_limits<float>::infinity());  // past fp16's range
  Tensor sum = x.clone();
  compute::cast(b, sum, true);  // sum = x + bf16(x)
  for (std::size_t i = 0; i < xv.size(); ++i) CHECK(sum.to_vector()[i] == xv[i] + bv[i]);
  Tensor odd = Tensor::empty({3}, DType::bf16);
  compute::cast(Tensor::from({1.0f, 2.0f, 3.0f}, {3}), odd);
  odd.zero();
  CHECK(odd.to_vector() == std::vector<float>{0.0f, 0.0f, 0.0f});
  Tensor wrong = Tensor::empty({4}, DType::bf16);
  CHECK_THROWS_WITH(compute::cast(x, wrong), Catch::Contains("the shapes differ"));
  Tensor labels = Tensor::from_i32({1, 2, 3, 4, 5}, {5});
  CHECK_THROWS_WITH(compute::cast(labels, b), Catch::Contains("only f32, bf16 and f16 convert"));
}

TEST_CASE("half operands on the host are refused, naming the operation and the tensor", "[half]") {
  Tensor x = compute::cast_to(Tensor::from(std::vector<float>(6, 0.5f), {2, 3}), DType::bf16);
  Tensor w = compute::cast_to(Tensor::from(std::vector<float>(12, 0.5f), {4, 3}), DType::bf16);
  Tensor y = Tensor::empty({2, 4}, DType::bf16);
  CHECK_THROWS_WITH(compute::linear_forward(x, w, Tensor(), y),
                    Catch::Contains("linear_forward: bf16 operands compute on a CUDA device only") &&
                        Catch::Contains("bf16[2, 3] on cpu"));
  Tensor y32 = Tensor::empty({2, 4});
  CHECK_THROWS_WITH(compute::linear_forward(x, w, Tensor(), y32), Catch::Contains("operands mix bf16 and f32"));
  Tensor r = Tensor::empty({2, 3}, DType::f16);
  Tensor xh = compute::cast_to(x, DType::f16);
  CHECK_THROWS_WITH(compute::relu_forward(xh, r), Catch::Contains("relu_forward: f16 operands compute on a CUDA device only"));
  // A model fed half input on the host fails at its first layer, and a layer
  // without half kernels says so wherever it runs.
  nn::MlpSpec spec;
  spec.inputs = 3;
  spec.hidden = {4};
  spec.classes = 2;
  auto model = nn::Model::mlp(spec, 1);
  nn::Tape tape;
  CHECK_THROWS_WITH(model.forward(x, tape), Catch::Contains("CUDA device only"));
  nn::Dropout drop(0.5f, 1);
  nn::Saved saved;
  CHECK_THROWS_WITH(drop.forward(x, saved, {true, 1}), Catch::Contains("dropout takes float32 input, got bf16[2, 3]"));
}
