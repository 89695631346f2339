#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "actors/ckpt/checkpoint.hpp"
#include "actors/nn/loss.hpp"
#include "actors/nn/model.hpp"
#include "actors/optim/optimizer.hpp"
#include "tests/actors/gradcheck.hpp"

using namespace troupe;
namespace fs = std::filesystem;
using compute::Tensor;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("troupe-ckpt-" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
};

nn::MlpSpec spec(std::int64_t hidden) {
  nn::MlpSpec s;
  s.inputs = 8;
  s.hidden = {hidden};
  s.classes = 3;
  return s;
}

void train_step(nn::Model& m, optim::Optimizer& opt, std::uint64_t seed) {
  Tensor x = Tensor::from(troupe::test::random_values(4 * 8, seed), {4, 8});
  Tensor y = Tensor::from_i32(std::vector<std::int32_t>{0, 1, 2, 1}, {4});
  nn::Tape t;
  nn::CrossEntropy ce;
  m.zero_grad();
  m.backward(ce.forward_backward(m.forward(x, t), y), t);
  opt.step(m.params());
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("a checkpoint restores parameters and optimizer state exactly", "[checkpoint]") {
  TempDir d;
  auto m = nn::Model::mlp(spec(6), 1);
  optim::Sgd opt({0.1f, 0.9f});
  train_step(m, opt, 1);
  train_step(m, opt, 2);
  const auto path = (d.path / "step2.ckpt").string();
  ckpt::save(path, ckpt::snapshot(m, &opt, {{"epoch", "3"}}));
  CHECK(fs::exists(path));
  for (auto& e : fs::directory_iterator(d.path)) CHECK(e.path().string().find(".tmp.") == std::string::npos);

  // Continue the original and a restored copy: they stay identical.
  auto m2 = nn::Model::mlp(spec(6), 99);
  optim::Sgd opt2({0.5f, 0.9f});
  auto c = ckpt::load(path);
  CHECK(c.meta.at("epoch") == "3");
  ckpt::restore(c, m2, &opt2);
  CHECK(opt2.steps() == 2);
  CHECK(opt2.lr() == Approx(0.1f));
  train_step(m, opt, 3);
  train_step(m2, opt2, 3);
  auto a = m.params(), b = m2.params();
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i]->value.to_vector() == b[i]->value.to_vector());
}

TEST_CASE("corrupt, truncated, foreign and mismatched checkpoints are refused", "[checkpoint]") {
  TempDir d;
  auto m = nn::Model::mlp(spec(6), 1);
  optim::Sgd opt({0.1f, 0.9f});
  train_step(m, opt, 1);
  const auto path = (d.path / "a.ckpt").string();
  ckpt::save(path, ckpt::snapshot(m, &opt));
  const std::string good = read(path);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(d.path / name, std::ios::binary) << bytes;
    return (d.path / name).string();
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 1;
  CHECK_THROWS_WITH(ckpt::load(write("flip", flipped)), Catch::Contains("checksum mismatch") && Catch::Contains("flip"));
  CHECK_THROWS_WITH(ckpt::load(write("cut", good.substr(0, good.size() - 100))), Catch::Contains("corrupt checkpoint"));
  CHECK_THROWS_WITH(ckpt::load(write("junk", "hello world, not a checkpoint")), Catch::Contains("not a troupe checkpoint"));
  std::string v2 = good;
  v2[8] = 2;
  CHECK_THROWS_WITH(ckpt::load(write("v2", v2)), Catch::Contains("format version 2"));
  CHECK_THROWS_WITH(ckpt::load((d.path / "none").string()), Catch::Contains("cannot open"));

  auto other = nn::Model::mlp(spec(7), 1);
  auto before = other.params()[0]->value.to_vector();
  CHECK_THROWS_WITH(ckpt::restore(ckpt::load(path), other, nullptr),
                    Catch::Contains("parameter '0.weight' is f32[6, 8] on cpu there, f32[7, 8] on cpu here"));
  CHECK(other.params()[0]->value.to_vector() == before);  // refused: untouched
  optim::AdamW adam({});
  auto same = nn::Model::mlp(spec(6), 2);
  CHECK_THROWS_WITH(ckpt::restore(ckpt::load(path), same, &adam), Catch::Contains("holds sgd optimizer state, the run uses adamw"));
}
