// The compute end to end: an MLP trained on Fashion-MNIST (the whole
// training set, three epochs, 784-256-10) reaches the accuracy such a model
// reaches in PyTorch.
#include <catch2/catch.hpp>

#include <filesystem>

#include "actors/compute/ops.hpp"
#include "actors/data/idx.hpp"
#include "actors/data/sampler.hpp"
#include "actors/nn/loss.hpp"
#include "actors/nn/model.hpp"
#include "actors/optim/optimizer.hpp"

using namespace troupe;
using compute::Tensor;

TEST_CASE("an MLP trained on Fashion-MNIST reaches 0.84 test accuracy", "[train]") {
  const auto dir = data::fashion_mnist_dir();
  if (!std::filesystem::exists(dir)) FAIL("no Fashion-MNIST at " << dir << ": apt install dataset-fashion-mnist");
  compute::set_num_threads(1);
  auto train = data::load_fashion_mnist(dir, data::Split::train);
  auto test = data::load_fashion_mnist(dir, data::Split::test);
  nn::MlpSpec spec;
  spec.hidden = {256};
  auto model = nn::Model::mlp(spec, 1);
  const int epochs = 3;
  const std::int64_t batch = 128;
  data::DistributedSampler sampler(train.size(), 1, 0, true, 1);
  const std::int64_t steps = epochs * ((sampler.per_replica() + batch - 1) / batch);
  optim::Sgd sgd({0.05f, 0.9f});
  optim::LrSchedule lr{optim::LrSchedule::Kind::cosine, 0.05f, 100, steps, 0.0f};
  nn::Tape tape;
  nn::CrossEntropy ce;
  std::int64_t step = 0;
  float first_loss = 0, last_loss = 0;
  for (int e = 0; e < epochs; ++e) {
    sampler.set_epoch(e);
    data::Batcher batches(train, sampler.indices(), batch);
    Tensor x, y;
    while (batches.next(x, y)) {
      model.zero_grad();
      model.backward(ce.forward_backward(model.forward(x, tape, {true, static_cast<std::uint64_t>(step)}), y), tape);
      sgd.set_lr(lr.at(step));
      sgd.step(model.params());
      if (step == 0) first_loss = ce.loss();
      last_loss = ce.loss();
      ++step;
    }
  }
  CHECK(step == steps);
  CHECK(last_loss < first_loss / 2);
  nn::Tape eval;
  Tensor logits = model.forward(test.images, eval, {false, 0});
  const double acc = static_cast<double>(nn::count_correct(logits, test.labels)) / static_cast<double>(test.size());
  INFO("test accuracy " << acc << " after " << steps << " steps; loss " << first_loss << " -> " << last_loss);
  CHECK(acc >= 0.84);
}
