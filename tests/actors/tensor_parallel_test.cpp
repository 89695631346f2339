// Tensor-parallel layers (actors/nn/tensor_parallel.hpp): a column-parallel
// then row-parallel block split over tp ranks (threads here, summing through
// a shared buffer in rank order) against the unsplit block.
//
// Bit-identity is impossible: the row-parallel layer's output and the
// column-parallel layer's input gradient are sums whose terms the split
// groups differently (each rank's partial sum, then the sum over ranks). So
// both runs are compared with the exact result (float64 from the same
// float32 values) under the standard bound for a float32 dot product of k
// terms in any order, |fl(s) - s| <= gamma_k * sum |a_i b_i|, gamma_k =
// k u / (1 - k u), u = 2^-24, carried through each step (ReLU is 1-Lipschitz;
// where a pre-activation lies within its own error of 0 the mask may differ,
// and the whole gradient through it counts as error). Two runs within e of
// the exact value are within 2e of each other: the test checks the unsplit
// run against the exact values first, so the bound is known to hold.
#include <catch2/catch.hpp>

#include <barrier>
#include <cmath>
#include <thread>

#include "actors/nn/model.hpp"
#include "actors/nn/tensor_parallel.hpp"

using namespace troupe;
using compute::Tensor;

namespace {

using Mat = std::vector<std::vector<double>>;

Mat mat(const Tensor& t, std::int64_t rows, std::int64_t cols) {
  const auto v = t.to_vector();
  Mat m(static_cast<std::size_t>(rows), std::vector<double>(static_cast<std::size_t>(cols)));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) m[r][c] = v[static_cast<std::size_t>(r * cols + c)];
  return m;
}
Mat zeros(std::size_t r, std::size_t c) { return Mat(r, std::vector<double>(c, 0.0)); }
Mat absm(const Mat& a) {
  Mat o = a;
  for (auto& row : o)
    for (auto& v : row) v = std::abs(v);
  return o;
}
Mat add(const Mat& a, const Mat& b) {
  Mat o = a;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < a[i].size(); ++j) o[i][j] += b[i][j];
  return o;
}
Mat scale(const Mat& a, double s) {
  Mat o = a;
  for (auto& row : o)
    for (auto& v : row) v *= s;
  return o;
}
Mat tr(const Mat& a) {
  Mat o = zeros(a[0].size(), a.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < a[i].size(); ++j) o[j][i] = a[i][j];
  return o;
}
Mat mul(const Mat& a, const Mat& b) {  // a [n, k] x b [k, m]
  Mat o = zeros(a.size(), b[0].size());
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t k = 0; k < b.size(); ++k)
      for (std::size_t j = 0; j < b[0].size(); ++j) o[i][j] += a[i][k] * b[k][j];
  return o;
}
Mat row(const std::vector<double>& v) { return Mat{v}; }
Mat bcast(const Mat& r, std::size_t rows) { return Mat(rows, r[0]); }
double gamma_k(double k) {
  const double u = std::ldexp(1.0, -24);
  return k * u / (1 - k * u);
}

// Every element of got within bound of want (1% slack for the float64 reference's own rounding).
void within(const Mat& got, const Mat& want, const Mat& bound, const char* what) {
  INFO(what);
  for (std::size_t i = 0; i < got.size(); ++i)
    for (std::size_t j = 0; j < got[i].size(); ++j) {
      INFO("[" << i << "][" << j << "] got " << got[i][j] << " want " << want[i][j] << " bound " << bound[i][j]);
      REQUIRE(std::abs(got[i][j] - want[i][j]) <= 1.01 * bound[i][j] + 1e-30);
    }
}

// tp ranks as threads: sum() adds every rank's tensor in rank order.
class ThreadSum {
 public:
  explicit ThreadSum(int n) : n_(n), slots_(static_cast<std::size_t>(n)), bar_(n) {}
  std::function<void(Tensor&)> for_rank(int r) {
    return [this, r](Tensor& t) {
      slots_[static_cast<std::size_t>(r)] = t.to_vector();
      bar_.arrive_and_wait();
      std::vector<float> acc = slots_[0];
      for (int k = 1; k < n_; ++k)
        for (std::size_t i = 0; i < acc.size(); ++i) acc[i] += slots_[static_cast<std::size_t>(k)][i];
      bar_.arrive_and_wait();  // all have read before anyone writes its next slot
      t.copy_from(Tensor::from(acc, t.shape()));
    };
  }

 private:
  int n_;
  std::vector<std::vector<float>> slots_;
  std::barrier<> bar_;
};

struct Pass {
  Mat y, dx;
  std::vector<Tensor> grads, values;  // by parameter, as the model lists them
};

Pass run(nn::Model& m, const Tensor& x, const Tensor& dy) {
  nn::Tape tape;
  Pass p;
  Tensor y = m.forward(x, tape);
  p.y = mat(y, y.size(0), y.size(1));
  Tensor dx = m.backward(dy, tape, {}, true);
  p.dx = mat(dx, dx.size(0), dx.size(1));
  for (auto* q : m.params()) {
    p.grads.push_back(q->grad.clone());
    p.values.push_back(q->value.clone());
  }
  return p;
}

Tensor filled(std::int64_t r, std::int64_t c, std::uint64_t seed) {
  nn::Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(r * c));
  for (auto& e : v) e = rng.uniform(-1.0f, 1.0f);
  return Tensor::from(v, {r, c});
}

}  // namespace

TEST_CASE("a column- then row-parallel block with tp = 2 and 4 matches the unsplit block within the float32 bound",
          "[tp]") {
  const std::int64_t B = 5, IN = 24, H = 64, OUT = 12;
  nn::MlpSpec spec;
  spec.inputs = IN;
  spec.hidden = {H};
  spec.classes = OUT;
  spec.tp_blocks = {0};
  const Tensor x = filled(B, IN, 11), dy = filled(B, OUT, 12);
  auto whole = nn::Model::mlp(spec, 7);
  const Pass ref = run(whole, x, dy);

  // The exact values, from the same float32 parameters and inputs.
  const Mat X = mat(x, B, IN), DY = mat(dy, B, OUT), W1 = mat(ref.values[0], H, IN), W2 = mat(ref.values[2], OUT, H);
  const Mat b1 = row(mat(ref.values[1], 1, H)[0]), b2 = row(mat(ref.values[3], 1, OUT)[0]);
  const Mat Z = add(mul(X, tr(W1)), bcast(b1, B));
  Mat Hm = Z, mask = zeros(B, H);
  for (std::size_t i = 0; i < Hm.size(); ++i)
    for (std::size_t j = 0; j < Hm[i].size(); ++j) {
      mask[i][j] = Z[i][j] > 0 ? 1.0 : 0.0;
      Hm[i][j] = std::max(Z[i][j], 0.0);
    }
  const Mat Y = add(mul(Hm, tr(W2)), bcast(b2, B));
  const Mat DH = mul(DY, W2);
  Mat DZ = DH;
  for (std::size_t i = 0; i < DZ.size(); ++i)
    for (std::size_t j = 0; j < DZ[i].size(); ++j) DZ[i][j] *= mask[i][j];
  const Mat DX = mul(DZ, W1);

  for (int tp : {2, 4}) {
    DYNAMIC_SECTION("tp = " << tp) {
      // The bounds, for a run whose row-parallel sums come in tp parts.
      const Mat aX = absm(X), aW1 = absm(W1), aW2 = absm(W2), aDY = absm(DY);
      const Mat eZ = scale(add(mul(aX, tr(aW1)), bcast(absm(b1), B)), gamma_k(IN + 1.0));
      const Mat aH = add(absm(Hm), eZ);
      const Mat eY = add(scale(add(mul(aH, tr(aW2)), bcast(absm(b2), B)), gamma_k(H + tp + 1.0)), mul(eZ, tr(aW2)));
      const Mat eDH = scale(mul(aDY, aW2), gamma_k(OUT));
      Mat eDZ = eDH;
      for (std::size_t i = 0; i < eDZ.size(); ++i)
        for (std::size_t j = 0; j < eDZ[i].size(); ++j)
          if (std::abs(Z[i][j]) <= eZ[i][j]) eDZ[i][j] += std::abs(DH[i][j]);  // the mask may differ here
      const Mat aDZ = add(absm(DZ), eDZ);
      const Mat eDX = add(scale(mul(aDZ, aW1), gamma_k(H + tp)), mul(eDZ, aW1));
      const Mat eDW1 = add(scale(mul(tr(aDZ), aX), gamma_k(B)), mul(tr(eDZ), aX));
      const Mat eDW2 = add(scale(mul(tr(aDY), aH), gamma_k(B)), mul(tr(aDY), eZ));

      // The unsplit run is within them of the exact values: the bound holds.
      within(ref.y, Y, eY, "unsplit output");
      within(ref.dx, DX, eDX, "unsplit input gradient");

      ThreadSum sum(tp);
      std::vector<Pass> parts(static_cast<std::size_t>(tp));
      std::vector<std::string> errors(static_cast<std::size_t>(tp));
      {
        std::vector<std::jthread> ranks;
        for (int r = 0; r < tp; ++r)
          ranks.emplace_back([&, r] {
            try {
              auto m = nn::Model::mlp(spec, 7, nn::TensorParallel{r, tp, sum.for_rank(r)});
              parts[static_cast<std::size_t>(r)] = run(m, x, dy);
            } catch (const std::exception& e) {
              errors[static_cast<std::size_t>(r)] = e.what();
            }
          });
      }
      for (auto& e : errors) REQUIRE(e.empty());
      const std::int64_t hs = H / tp;
      for (int r = 0; r < tp; ++r) {
        const auto& p = parts[static_cast<std::size_t>(r)];
        INFO("tp rank " << r);
        // Each shard starts as its part of the unsplit layers, bit for bit.
        REQUIRE(p.values.size() == (r == 0 ? 4u : 3u));  // the row-parallel bias lives on rank 0
        CHECK(p.values[0].to_vector() == ref.values[0].narrow(r * hs, hs).to_vector());
        CHECK(p.values[1].to_vector() == ref.values[1].narrow(r * hs, hs).to_vector());
        const Mat w2_shard = mat(p.values[2], OUT, hs);
        for (std::int64_t o = 0; o < OUT; ++o)
          for (std::int64_t c = 0; c < hs; ++c) REQUIRE(w2_shard[o][c] == W2[o][r * hs + c]);
        // Outputs and input gradients are whole on every rank.
        within(p.y, ref.y, scale(eY, 2), "tp output vs unsplit");
        within(p.dx, ref.dx, scale(eDX, 2), "tp input gradient vs unsplit");
        // Weight gradients: this rank's rows of W1, columns of W2.
        const Mat g1 = mat(p.grads[0], hs, IN), g1_ref = mat(ref.grads[0], H, IN);
        Mat g1_want(g1_ref.begin() + r * hs, g1_ref.begin() + (r + 1) * hs);
        Mat e1(eDW1.begin() + r * hs, eDW1.begin() + (r + 1) * hs);
        within(g1, g1_want, scale(e1, 2), "column-parallel weight gradient");
        const Mat g2 = mat(p.grads[2], OUT, hs), g2_ref = mat(ref.grads[2], OUT, H);
        Mat g2_want = zeros(OUT, hs), e2 = zeros(OUT, hs);
        for (std::int64_t o = 0; o < OUT; ++o)
          for (std::int64_t c = 0; c < hs; ++c) {
            g2_want[o][c] = g2_ref[o][r * hs + c];
            e2[o][c] = eDW2[o][r * hs + c];
          }
        within(g2, g2_want, scale(e2, 2), "row-parallel weight gradient");
        if (r == 0) {  // the bias gradient: the same sum over the batch
          CHECK(p.grads[3].to_vector() == ref.grads[3].to_vector());
        }
      }
    }
  }
}

TEST_CASE("a tensor-parallel layout that cannot hold the model is refused, naming the layer", "[tp]") {
  nn::MlpSpec spec;
  spec.inputs = 8;
  spec.hidden = {12, 6, 16};
  spec.classes = 3;
  spec.tp_blocks = {0};
  auto sum = [](Tensor&) {};
  CHECK_THROWS_WITH(nn::Model::mlp(spec, 1, nn::TensorParallel{0, 8, sum}),
                    Catch::Contains("tp = 8 does not divide hidden layer 0 (width 12)"));
  CHECK_NOTHROW(nn::Model::mlp(spec, 1, nn::TensorParallel{0, 4, sum}));
  spec.tp_blocks = {0, 1};
  CHECK_THROWS_WITH(nn::Model::mlp(spec, 1, nn::TensorParallel{0, 2, sum}), Catch::Contains("blocks 0 and 1 overlap"));
  spec.tp_blocks = {3};
  CHECK_THROWS_WITH(nn::Model::mlp(spec, 1), Catch::Contains("block 3 is not a hidden layer (there are 3)"));
  spec.tp_blocks = {2};
  spec.layernorm = true;
  CHECK_THROWS_WITH(nn::Model::mlp(spec, 1), Catch::Contains("hidden layer 2 is split by tp, so it cannot have layernorm"));
  spec.layernorm = false;
  CHECK_THROWS_WITH(nn::Model::mlp(spec, 1, nn::TensorParallel{2, 2, sum}), Catch::Contains("tp rank 2 of 2"));
  // tp = 1: the split layers are whole, and the model is the unsplit one.
  auto one = nn::Model::mlp(spec, 1, nn::TensorParallel{0, 1, {}});
  auto plain = nn::Model::mlp(spec, 1);
  auto a = one.params(), b = plain.params();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i]->name == b[i]->name);
    CHECK(a[i]->value.to_vector() == b[i]->value.to_vector());
  }
}
