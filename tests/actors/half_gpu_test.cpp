// bf16 and fp16 on the device (label gpu): conversions bit-identical to the
// host's, each half operation against the float32 host kernels on the same
// (rounded) inputs, and an MLP trained with half activations against one
// trained in float32. Without a CUDA device it checks nothing.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "actors/compute/graph.hpp"
#include "actors/compute/half.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/stream.hpp"
#include "actors/data/idx.hpp"
#include "actors/data/sampler.hpp"
#include "actors/nn/loss.hpp"
#include "actors/nn/model.hpp"
#include "actors/optim/optimizer.hpp"
#include "tests/actors/gradcheck.hpp"

using namespace troupe;
using compute::Device;
using compute::DType;
using compute::Tensor;
using troupe::test::random_values;

namespace {

bool have_gpu() {
  if (compute::cuda_available()) return true;
  WARN("no CUDA device here: the half-precision gpu cases check nothing");
  return false;
}

const Device gpu = Device::cuda(0);

// A float32 host tensor holding values already rounded to t (what the device sees).
Tensor rounded(const std::vector<float>& v, const compute::Shape& shape, DType t) {
  return compute::cast_to(compute::cast_to(Tensor::from(v, shape), t), DType::f32);
}

// The worst error relative to the reference's largest magnitude.
double rel_error(const Tensor& ref, const Tensor& got) {
  auto a = ref.to_vector(), b = got.to_vector();
  REQUIRE(a.size() == b.size());
  double worst = 0, scale = 1e-6;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::abs(a[i])));
  }
  return worst / scale;
}

// Within a few units of the type's last place (outputs are rounded once; sums are float32).
double tolerance(DType t) { return t == DType::bf16 ? 2e-2 : 4e-3; }

}  // namespace

TEST_CASE("gpu: half conversions on the device are bit-identical to the host's", "[gpu][half]") {
  if (!have_gpu()) return;
  // Wide magnitudes: fp16 subnormals and overflow, bf16 rounding everywhere.
  std::vector<float> v = random_values(4096, 11, -1.0f, 1.0f);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::ldexp(v[i], static_cast<int>(i % 48) - 30);
  v.insert(v.end(), {0.0f, -0.0f, 65504.0f, 65520.0f, 1e30f, -1e30f, std::ldexp(1.0f, -25), std::ldexp(3.0f, -25)});
  const Tensor host = Tensor::from(v, {static_cast<std::int64_t>(v.size())});
  for (DType t : {DType::bf16, DType::f16}) {
    INFO(compute::dtype_name(t));
    const Tensor on_host = compute::cast_to(host, t);
    const Tensor on_dev = compute::cast_to(host.to(gpu), t);
    std::vector<std::uint16_t> a(v.size()), b(v.size());
    std::memcpy(a.data(), on_host.raw(), a.size() * 2);
    std::memcpy(b.data(), on_dev.to(Device::cpu()).raw(), b.size() * 2);
    CHECK(a == b);
    // And back to float32 exactly; accumulate adds in float32.
    CHECK(compute::cast_to(on_dev, DType::f32).to_vector() == on_host.to_vector());
    Tensor acc = host.to(gpu);
    compute::cast(on_dev, acc, true);
    auto got = acc.to_vector(), back = on_host.to_vector();
    for (std::size_t i = 0; i < v.size(); i += 97) CHECK(got[i] == v[i] + back[i]);
  }
}

TEST_CASE("gpu: half linear, activations and cross-entropy against the float32 host kernels", "[gpu][half]") {
  if (!have_gpu()) return;
  const std::int64_t B = 37, in = 53, out = 29;
  for (DType t : {DType::bf16, DType::f16}) {
    INFO(compute::dtype_name(t));
    const double tol = tolerance(t);
    Tensor x = rounded(random_values(static_cast<std::size_t>(B * in), 1), {B, in}, t);
    Tensor w = rounded(random_values(static_cast<std::size_t>(out * in), 2), {out, in}, t);
    Tensor b = rounded(random_values(static_cast<std::size_t>(out), 3), {out}, t);
    Tensor dy = rounded(random_values(static_cast<std::size_t>(B * out), 4), {B, out}, t);
    auto half = [&](const Tensor& f) { return compute::cast_to(f.to(gpu), t); };
    for (bool bias : {true, false}) {  // with a bias: cublasLt's epilogue; without: a plain product
      INFO("bias " << bias);
      Tensor y = Tensor::empty({B, out});
      compute::linear_forward(x, w, bias ? b : Tensor(), y);
      Tensor yd = Tensor::empty({B, out}, t, gpu);
      compute::linear_forward(half(x), half(w), bias ? half(b) : Tensor(), yd);
      CHECK(rel_error(y, yd) < tol);
    }
    for (bool acc : {false, true}) {
      INFO("accumulate " << acc);
      Tensor dx = Tensor::empty({B, in}), dw = Tensor::from(random_values(static_cast<std::size_t>(out * in), 5), {out, in});
      Tensor db = Tensor::from(random_values(static_cast<std::size_t>(out), 6), {out});
      Tensor dxd = Tensor::empty({B, in}, t, gpu), dwd = half(dw), dbd = half(db);
      dw = compute::cast_to(compute::cast_to(dw, t), DType::f32);  // the same start on both sides
      db = compute::cast_to(compute::cast_to(db, t), DType::f32);
      compute::linear_backward(x, w, dy, dx, dw, db, acc);
      compute::linear_backward(half(x), half(w), half(dy), dxd, dwd, dbd, acc);
      CHECK(rel_error(dx, dxd) < tol);
      CHECK(rel_error(dw, dwd) < tol);
      CHECK(rel_error(db, dbd) < tol);
    }
    Tensor r = Tensor::empty({B, in}), rd = Tensor::empty({B, in}, t, gpu);
    compute::relu_forward(x, r);
    compute::relu_forward(half(x), rd);
    CHECK(rel_error(r, rd) == 0);  // relu only selects
    Tensor dr = Tensor::empty({B, in}), drd = Tensor::empty({B, in}, t, gpu);
    Tensor g = rounded(random_values(static_cast<std::size_t>(B * in), 7), {B, in}, t);
    compute::relu_backward(r, g, dr);
    compute::relu_backward(rd, half(g), drd);
    CHECK(rel_error(dr, drd) == 0);
    compute::gelu_forward(x, r);
    compute::gelu_forward(half(x), rd);
    CHECK(rel_error(r, rd) < tol);
    compute::gelu_backward(x, g, dr);
    compute::gelu_backward(half(x), half(g), drd);
    CHECK(rel_error(dr, drd) < tol);
    // Cross-entropy on half logits: float32 loss and count, half gradient.
    const std::int64_t C = 10;
    Tensor logits = rounded(random_values(static_cast<std::size_t>(B * C), 8, -3, 3), {B, C}, t);
    std::vector<std::int32_t> lv(static_cast<std::size_t>(B));
    for (std::size_t i = 0; i < lv.size(); ++i) lv[i] = static_cast<std::int32_t>(i * 7 % C);
    Tensor labels = Tensor::from_i32(lv, {B});
    Tensor dl = Tensor::empty({B, C}), loss = Tensor::empty({1}), correct = Tensor::empty({1});
    compute::softmax_xent(logits, labels, dl, loss, correct);
    Tensor dld = Tensor::empty({B, C}, t, gpu), lossd = Tensor::empty({1}, DType::f32, gpu),
           correctd = Tensor::empty({1}, DType::f32, gpu);
    compute::softmax_xent(half(logits), labels.to(gpu), dld, lossd, correctd);
    CHECK(lossd.item() == Approx(loss.item()).epsilon(1e-4));  // float32 inside, on the same inputs
    CHECK(correctd.item() == correct.item());
    CHECK(rel_error(dl, dld) < tol);
    Tensor counted = Tensor::empty({1}, DType::f32, gpu);
    compute::count_correct(half(logits), labels.to(gpu), counted);
    CHECK(counted.item() == correct.item());
  }
}

namespace {

struct Trained {
  std::vector<float> losses;
  double accuracy = 0;
};

// An MLP 784-256-10 on the first 12,000 training examples, 2 epochs on the
// GPU, its input (and so its activations) of type t; test accuracy on all 10,000.
Trained train_on_gpu(DType t, bool graph) {
  const auto dir = data::fashion_mnist_dir();
  if (!std::filesystem::exists(dir)) FAIL("no Fashion-MNIST at " << dir);
  auto train = data::load_fashion_mnist(dir, data::Split::train);
  auto test = data::load_fashion_mnist(dir, data::Split::test);
  train.images = train.images.narrow(0, 12000);
  train.labels = train.labels.narrow(0, 12000);
  nn::MlpSpec spec;
  spec.hidden = {256};
  auto model = nn::Model::mlp(spec, 1);
  model.to(gpu);
  optim::Sgd sgd({0.05f, 0.9f});
  nn::Tape tape;
  nn::CrossEntropy ce;
  Trained out;
  Tensor xd, yd;
  compute::Stream stream(0);
  compute::set_stream(&stream);
  compute::Graph g;
  auto step = [&]() {
    model.zero_grad();
    model.backward(ce.forward_backward(model.forward(xd, tape, {true, 1}), yd), tape);
    sgd.step(model.params());
  };
  Tensor x32 = Tensor::empty({128, 784}, DType::f32, gpu);
  for (int e = 0; e < 2; ++e) {
    data::DistributedSampler sampler(train.size(), 1, 0, true, 1);
    sampler.set_epoch(e);
    data::Batcher batches(train, sampler.indices(), 128, true);
    Tensor x, y;
    while (batches.next(x, y)) {
      x32.copy_from(x, &stream);
      if (!xd.defined()) {
        xd = Tensor::empty({128, 784}, t, gpu);
        yd = Tensor::empty({128}, DType::i32, gpu);
      }
      compute::cast(x32, xd);  // f32 -> t (a copy when t is f32)
      yd.copy_from(y, &stream);
      if (graph && out.losses.size() == 3) g.capture(stream, step);  // after warm-up steps made the buffers
      if (graph && out.losses.size() >= 3)
        g.launch();
      else
        step();
      out.losses.push_back(ce.loss());
    }
  }
  nn::Tape eval;
  Tensor logits = model.forward(compute::cast_to(test.images.to(gpu, &stream), t), eval, {false, 0});
  out.accuracy = static_cast<double>(nn::count_correct(logits, test.labels.to(gpu, &stream))) /
                 static_cast<double>(test.size());
  stream.synchronize();
  compute::set_stream(nullptr);
  return out;
}

}  // namespace

TEST_CASE("gpu: an MLP trained with bf16 or fp16 activations follows the float32 run", "[gpu][half][slow]") {
  if (!have_gpu()) return;
  const auto f32 = train_on_gpu(DType::f32, false);
  INFO("f32 accuracy " << f32.accuracy);
  CHECK(f32.accuracy > 0.80);
  for (DType t : {DType::bf16, DType::f16}) {
    for (bool graph : {false, true}) {
      INFO(compute::dtype_name(t) << (graph ? " as a CUDA graph" : " eager"));
      const auto half = train_on_gpu(t, graph);
      REQUIRE(half.losses.size() == f32.losses.size());
      INFO("accuracy " << half.accuracy << ", losses " << half.losses.front() << " -> " << half.losses.back());
      CHECK(std::abs(half.accuracy - f32.accuracy) < 0.015);
      // The trajectory: the mean loss of each tenth of the run within 5% of float32's.
      const std::size_t n = f32.losses.size(), part = n / 10;
      for (std::size_t k = 0; k + part <= n; k += part) {
        double a = 0, b = 0;
        for (std::size_t i = k; i < k + part; ++i) {
          a += f32.losses[i];
          b += half.losses[i];
        }
        INFO("steps " << k << ".." << k + part << ": f32 " << a / part << ", half " << b / part);
        CHECK(std::abs(a - b) / a < 0.05);
      }
    }
  }
}
