// A run's configuration names its choices with enums (a typo is a compile
// error): their words, the device choice, the defaults, and the checks that
// remain for values the type allows but a run cannot use.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "actors/training.hpp"
#include "tests/support/enum_words.hpp"

using namespace troupe;
using train::DeviceChoice;

TEST_CASE("model, element type and device kind are named by words", "[config]") {
  troupe::test::check_enum_words<nn::Activation>("activation", "relu or gelu");
  troupe::test::check_enum_words<compute::DType>("element type", "f32, f16, bf16 or i32");
  troupe::test::check_enum_words<compute::Device::Kind>("device kind", "cpu or cuda");
  CHECK(std::string(compute::dtype_name(compute::DType::bf16)) == "bf16");
}

TEST_CASE("a device choice reads and prints cpu, cuda and cuda:N", "[config]") {
  struct Case {
    const char* text;
    DeviceChoice want;
  };
  for (auto c : {Case{"cpu", DeviceChoice::cpu()}, Case{"cuda", DeviceChoice::cuda()},
                 Case{"cuda:0", DeviceChoice::cuda(0)}, Case{"cuda:3", DeviceChoice::cuda(3)}}) {
    INFO(c.text);
    CHECK(DeviceChoice::parse(c.text) == c.want);
    CHECK(c.want.str() == c.text);
    CHECK(fmt::format("{}", c.want) == c.text);
  }
  // "cuda" is the GPU this process was given, not device 0 by name.
  CHECK(DeviceChoice::cuda() != DeviceChoice::cuda(0));
  CHECK(DeviceChoice::cuda().index == -1);
  CHECK_FALSE(DeviceChoice::cpu().is_cuda());
  CHECK(DeviceChoice::cuda(2).is_cuda());
  for (const char* bad : {"tpu", "CPU", "cuda:", "cuda:x", "cuda:-1", " cpu", ""}) {
    INFO("'" << bad << "'");
    CHECK_THROWS_WITH(DeviceChoice::parse(bad),
                      Catch::Contains(fmt::format("unknown device '{}': expected cpu, cuda or cuda:N", bad)));
  }
  CHECK(train::device_of(DeviceChoice::cpu()) == compute::Device::cpu());
  CHECK(train::device_of(DeviceChoice::cuda(2)) == compute::Device::cuda(2));
}

TEST_CASE("a configuration's choices default as before and cross the wire as enums", "[config]") {
  const train::TrainConfig d;
  CHECK(d.activation == nn::Activation::relu);
  CHECK(d.optimizer == optim::Algorithm::sgd);
  CHECK(d.schedule == optim::LrKind::constant);
  CHECK(d.precision == compute::DType::f32);
  CHECK(d.device == DeviceChoice::cpu());
  train::TrainConfig c;
  c.activation = nn::Activation::gelu;
  c.optimizer = optim::Algorithm::adamw;
  c.schedule = optim::LrKind::linear;
  c.precision = compute::DType::bf16;
  c.device = DeviceChoice::cuda(1);
  const auto back = codec::from_bytes<train::TrainConfig>(codec::to_bytes(c));
  CHECK(back.activation == c.activation);
  CHECK(back.optimizer == c.optimizer);
  CHECK(back.schedule == c.schedule);
  CHECK(back.precision == c.precision);
  CHECK(back.device == c.device);
  // A device kind outside its words is refused on decode, as a bad word would be.
  auto bytes = codec::to_bytes(DeviceChoice::cuda(1));
  bytes[0] = std::byte{2};
  CHECK_THROWS_WITH(codec::from_bytes<DeviceChoice>(bytes), Catch::Contains("enum value 2 at offset 0"));
}

TEST_CASE("check_config refuses a precision a run cannot compute in, naming it", "[config]") {
  train::TrainConfig c;
  c.precision = compute::DType::i32;
  CHECK_THROWS_WITH(train::check_config(c), Catch::Contains("replica: precision 'i32': expected f32, bf16 or f16"));
  c.precision = compute::DType::f16;
  CHECK_THROWS_WITH(train::check_config(c),
                    Catch::Contains("replica: precision 'f16' needs a GPU replica (device is 'cpu')"));
  c.precision = compute::DType::f32;
  CHECK_NOTHROW(train::check_config(c));
  CHECK(train::precisions == std::array{compute::DType::f32, compute::DType::bf16, compute::DType::f16});
  for (auto p : train::precisions) CHECK(train::is_precision(p));
  CHECK_FALSE(train::is_precision(compute::DType::i32));
}

TEST_CASE("the optimizer and schedule a configuration names are the ones made", "[config]") {
  train::TrainConfig c;
  CHECK(train::make_optimizer(c)->kind() == "sgd");
  c.optimizer = optim::Algorithm::adamw;
  CHECK(train::make_optimizer(c)->kind() == "adamw");
  c.schedule = optim::LrKind::cosine;
  CHECK(train::make_lr_schedule(c).kind == optim::LrKind::cosine);
  c.activation = nn::Activation::gelu;
  CHECK(train::mlp_spec(c).activation == nn::Activation::gelu);
}
