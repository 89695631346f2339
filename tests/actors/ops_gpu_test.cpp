// Host and device kernels agree (label gpu). Without a CUDA device the suite
// says so and checks nothing.
#include <catch2/catch.hpp>

#include "actors/compute/graph.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/stream.hpp"
#include "actors/nn/layers.hpp"
#include "actors/nn/loss.hpp"
#include "actors/nn/model.hpp"
#include "actors/optim/optimizer.hpp"
#include "tests/actors/gradcheck.hpp"

using namespace troupe;
using compute::Device;
using compute::Tensor;
using troupe::test::random_values;

namespace {

bool have_gpu() {
  if (compute::cuda_available()) return true;
  WARN("no CUDA device here: the gpu suite checks nothing");
  return false;
}

void close(const Tensor& host, const Tensor& dev, float tol, const char* what) {
  auto a = host.to_vector(), b = dev.to_vector();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(what << "[" << i << "] host " << a[i] << " device " << b[i]);
    REQUIRE(std::abs(a[i] - b[i]) <= tol * (1.0f + std::abs(a[i])));
  }
}

const Device gpu = Device::cuda(0);

}  // namespace

TEST_CASE("gpu: device tensors round-trip, views copy, streams order work", "[gpu]") {
  if (!have_gpu()) return;
  Tensor h = Tensor::from(random_values(6 * 5, 1), {6, 5});
  Tensor d = h.to(gpu);
  CHECK(d.device() == gpu);
  CHECK(d.to_vector() == h.to_vector());
  CHECK(d.transposed().to_vector() == h.transposed().to_vector());
  compute::Stream s(0);
  Tensor back = Tensor::empty({6, 5});
  back.copy_from(d, &s);
  s.synchronize();
  CHECK(back.to_vector() == h.to_vector());
  d.fill(2.0f);
  CHECK(d.to_vector() == std::vector<float>(30, 2.0f));
}

TEST_CASE("gpu: every operation agrees with the host kernels", "[gpu]") {
  if (!have_gpu()) return;
  const std::int64_t B = 33, in = 70, out = 45;
  Tensor x = Tensor::from(random_values(static_cast<std::size_t>(B * in), 2), {B, in});
  Tensor w = Tensor::from(random_values(static_cast<std::size_t>(out * in), 3), {out, in});
  Tensor b = Tensor::from(random_values(static_cast<std::size_t>(out), 4), {out});
  Tensor dy = Tensor::from(random_values(static_cast<std::size_t>(B * out), 5), {B, out});
  auto on = [](const Tensor& t) { return t.to(gpu); };

  Tensor y = Tensor::empty({B, out}), yd = Tensor::empty({B, out}, compute::DType::f32, gpu);
  compute::linear_forward(x, w, b, y);
  compute::linear_forward(on(x), on(w), on(b), yd);
  close(y, yd, 1e-4f, "linear y");
  Tensor dx = Tensor::empty({B, in}), dw = Tensor::empty({out, in}), db = Tensor::empty({out});
  Tensor dxd = on(dx), dwd = on(dw), dbd = on(db);
  compute::linear_backward(x, w, dy, dx, dw, db, false);
  compute::linear_backward(on(x), on(w), on(dy), dxd, dwd, dbd, false);
  close(dx, dxd, 1e-4f, "dx");
  close(dw, dwd, 1e-4f, "dw");
  close(db, dbd, 1e-4f, "db");

  // The element-wise ops below take the host's y on both sides, so each
  // comparison sees only its own op's rounding.
  yd = on(y);
  Tensor gy = Tensor::empty({B, out}), gyd = on(gy), gdx = Tensor::empty({B, out}), gdxd = on(gdx);
  compute::gelu_forward(y, gy);
  compute::gelu_forward(yd, gyd);
  close(gy, gyd, 1e-5f, "gelu");
  compute::gelu_backward(y, dy, gdx);
  compute::gelu_backward(yd, on(dy), gdxd);
  close(gdx, gdxd, 1e-5f, "gelu dx");
  compute::relu_forward(y, gy);
  compute::relu_forward(yd, gyd);
  close(gy, gyd, 0.0f, "relu");

  Tensor m = Tensor::empty({B, out}), md = on(m);
  compute::dropout_forward(y, 0.3f, 77, gy, m);
  compute::dropout_forward(yd, 0.3f, 77, gyd, md);
  CHECK(m.to_vector() == md.to_vector());  // the same mask, draw for draw

  Tensor g = Tensor::from(random_values(static_cast<std::size_t>(out), 6, 0.5f, 1.5f), {out});
  Tensor be = Tensor::from(random_values(static_cast<std::size_t>(out), 7), {out});
  Tensor ln = Tensor::empty({B, out}), mean = Tensor::empty({B}), rstd = Tensor::empty({B});
  Tensor lnd = on(ln), meand = on(mean), rstdd = on(rstd);
  compute::layernorm_forward(y, g, be, 1e-5f, ln, mean, rstd);
  compute::layernorm_forward(yd, on(g), on(be), 1e-5f, lnd, meand, rstdd);
  close(ln, lnd, 1e-4f, "layernorm");
  Tensor ldx = Tensor::empty({B, out}), ldg = Tensor::empty({out}), ldb = Tensor::empty({out});
  Tensor ldxd = on(ldx), ldgd = on(ldg), ldbd = on(ldb);
  compute::layernorm_backward(y, g, mean, rstd, dy, ldx, ldg, ldb, false);
  compute::layernorm_backward(yd, on(g), meand, rstdd, on(dy), ldxd, ldgd, ldbd, false);
  close(ldx, ldxd, 1e-3f, "layernorm dx");
  close(ldg, ldgd, 1e-3f, "layernorm dgamma");
  close(ldb, ldbd, 1e-4f, "layernorm dbeta");

  std::vector<std::int32_t> lab(static_cast<std::size_t>(B));
  for (std::size_t i = 0; i < lab.size(); ++i) lab[i] = static_cast<std::int32_t>(i % out);
  Tensor labels = Tensor::from_i32(lab, {B});
  nn::CrossEntropy hc, dc;
  hc.forward_backward(y, labels);
  dc.forward_backward(yd, on(labels));
  CHECK(dc.loss() == Approx(hc.loss()).epsilon(1e-4));
  CHECK(dc.correct() == hc.correct());
  close(hc.dlogits(), dc.dlogits(), 1e-5f, "dlogits");
}

TEST_CASE("gpu: an MLP step (SGD and AdamW) on the device matches the host", "[gpu]") {
  if (!have_gpu()) return;
  nn::MlpSpec spec;
  spec.inputs = 20;
  spec.hidden = {32, 16};
  spec.classes = 5;
  spec.layernorm = true;
  const bool adam = GENERATE(false, true);
  auto host = nn::Model::mlp(spec, 3), dev = nn::Model::mlp(spec, 3);
  dev.to(gpu);
  std::unique_ptr<optim::Optimizer> oh, od;
  if (adam) {
    oh = std::make_unique<optim::AdamW>(optim::AdamWOptions{});
    od = std::make_unique<optim::AdamW>(optim::AdamWOptions{});
  } else {
    oh = std::make_unique<optim::Sgd>(optim::SgdOptions{0.05f, 0.9f, 0.0f, 1e-4f, true});
    od = std::make_unique<optim::Sgd>(optim::SgdOptions{0.05f, 0.9f, 0.0f, 1e-4f, true});
  }
  Tensor x = Tensor::from(random_values(8 * 20, 9), {8, 20});
  Tensor y = Tensor::from_i32({0, 1, 2, 3, 4, 0, 1, 2}, {8});
  Tensor xd = x.to(gpu), yd = y.to(gpu);
  for (int step = 0; step < 3; ++step) {
    for (auto [m, o, xx, yy] : {std::tuple{&host, oh.get(), x, y}, std::tuple{&dev, od.get(), xd, yd}}) {
      nn::Tape t;
      nn::CrossEntropy ce;
      m->zero_grad();
      m->backward(ce.forward_backward(m->forward(xx, t), yy), t);
      optim::clip_grad_norm(m->params(), 1.0f);
      o->step(m->params());
    }
  }
  auto ph = host.params(), pd = dev.params();
  for (std::size_t i = 0; i < ph.size(); ++i) close(ph[i]->value, pd[i]->value, 1e-3f, ph[i]->name.c_str());
}

TEST_CASE("gpu: a training step captured as a CUDA graph replays exactly as eager steps", "[gpu]") {
  if (!compute::cuda_available()) {
    // Without a device a capture cannot start: a DeviceError, never a crash.
    compute::Graph g;
    CHECK_THROWS_AS(
        [&] {
          compute::Stream s(0);
          g.capture(s, [] {});
        }(),
        compute::DeviceError);
    CHECK_FALSE(g.ready());
    CHECK_THROWS_AS(g.launch(), compute::DeviceError);
    return;
  }
  nn::MlpSpec spec;
  spec.inputs = 20;
  spec.hidden = {32, 16};
  spec.classes = 5;
  auto eager = nn::Model::mlp(spec, 4), graphed = nn::Model::mlp(spec, 4);
  eager.to(gpu);
  graphed.to(gpu);
  Tensor x = Tensor::from(random_values(8 * 20, 11), {8, 20}).to(gpu);
  Tensor y = Tensor::from_i32({0, 1, 2, 3, 4, 0, 1, 2}, {8}).to(gpu);
  compute::Stream s(0);
  compute::set_stream(&s);
  optim::Sgd oe({0.05f, 0.9f}), og({0.05f, 0.9f});
  nn::Tape te, tg;
  nn::CrossEntropy ce, cg;
  auto pe = eager.params(), pg = graphed.params();
  auto eager_step = [&] {
    eager.zero_grad();
    eager.backward(ce.forward_backward(eager.forward(x, te), y), te);
    oe.step(pe);
  };
  auto graph_step = [&] {
    graphed.zero_grad();
    graphed.backward(cg.forward_backward(graphed.forward(x, tg), y), tg);
    og.step(pg);
  };
  eager_step();
  graph_step();  // the first step for real: buffers and momentum are made
  compute::Graph g;
  g.capture(s, graph_step);
  CHECK(g.ready());
  CHECK(g.nodes() > 10);
  for (int i = 0; i < 4; ++i) {
    eager_step();
    g.launch();
  }
  s.synchronize();
  CHECK(cg.loss() == Approx(ce.loss()).epsilon(1e-6));  // summed with atomics: the order may differ
  for (std::size_t i = 0; i < pe.size(); ++i) CHECK(pe[i]->value.to_vector() == pg[i]->value.to_vector());
  // Work that allocates cannot be captured: a DeviceError, and the graph stays empty.
  compute::Graph bad;
  CHECK_THROWS_AS(bad.capture(s, [&] { (void)Tensor::empty({1 << 20}, compute::DType::f32, gpu); }), compute::DeviceError);
  CHECK_FALSE(bad.ready());
  compute::set_stream(nullptr);
}
