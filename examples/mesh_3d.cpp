// 3-D parallelism built by hand: the 2 x 2 x 2 mesh that
// examples/topologies/fashion_mnist_3d.toml describes, made of your own
// actors. Each actor is one (replica, stage, tp rank): it holds its tp rank's
// part of its stage's layers (nn::Model::mlp with a TensorParallel), and the
// mesh's dimensions give every group without a rank list: "tp" (the ranks
// that split a stage), "pp" (one replica's stages at one tp rank), "dp" (a
// stage's twin in the other replica). Each step, stage 0 sends its
// activations to stage 1, which sends the gradients back; each gradient is
// averaged with its twin; then SGD. One micro-batch per step: the pipeline
// trainer (trainers/pipeline.hpp) schedules many and overlaps them.
//
//   build/bin/mesh_3d [--steps N]
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "actors/nn/loss.hpp"
#include "actors/nn/tensor_parallel.hpp"
#include "actors/training.hpp"
#include "runtime/coll/create.hpp"
#include "runtime/troupe.hpp"

using namespace troupe;
using compute::Tensor;

namespace {

std::span<float> floats(Tensor& t) { return {t.f32(), static_cast<std::size_t>(t.numel())}; }

class Shard {
 public:
  explicit Shard(train::TrainConfig cfg) : cfg_(std::move(cfg)) {}

  Task<std::string> setup(std::int64_t cut) {
    tp_ = coll::group("tp");
    pp_ = coll::group("pp");
    dp_ = coll::group("dp");
    stage_ = pp_->rank();
    // This tp rank's part of the model: the split layers sum over "tp".
    nn::TensorParallel where{static_cast<int>(tp_->rank()), static_cast<int>(tp_->size()),
                             [g = tp_](Tensor& t) { g->allreduce(floats(t)).get(); }};
    nn::Model whole = train::make_model(cfg_, where);
    part_ = stage_ == 0 ? whole.slice(0, static_cast<std::size_t>(cut)) : whole.slice(static_cast<std::size_t>(cut), whole.size());
    data_ = train::load_train(cfg_);
    stream_ = std::make_unique<train::DataStream>(data_, cfg_, dp_->size(), dp_->rank());  // this replica's share
    opt_ = train::make_optimizer(cfg_);
    co_return fmt::format("replica {} stage {} tp rank {}: {} parameters", dp_->rank(), stage_, tp_->rank(),
                          part_.num_params());
  }

  Task<float> step() {
    Tensor x, y;
    stream_->next(x, y);  // every stage of a replica reads the same batch: stage 1 needs its labels
    part_.zero_grad();
    float loss = 0;
    if (stage_ == 0) {
      Tensor h = part_.forward(x, tape_);
      co_await pp_->send(std::span<const float>(h.f32(), static_cast<std::size_t>(h.numel())), 1);
      Tensor dh = Tensor::empty(h.shape());
      co_await pp_->recv(floats(dh), 1);
      part_.backward(dh, tape_);
    } else {
      Tensor h = Tensor::empty({cfg_.batch, width_in()});
      co_await pp_->recv(floats(h), 0);
      // The loss's gradient and the input gradient live in buffers the next
      // pass reuses: copies go to the backward and to stage 0.
      Tensor dlogits = ce_.forward_backward(part_.forward(h, tape_), y).clone();
      loss = ce_.loss();
      Tensor dh = part_.backward(dlogits, tape_, {}, /*need_input_grad=*/true).clone();
      co_await pp_->send(std::span<const float>(dh.f32(), static_cast<std::size_t>(dh.numel())), 0);
    }
    for (auto* p : part_.params()) co_await dp_->allreduce(floats(p->grad), coll::Op::avg);
    opt_->step(part_.params());
    co_return loss;
  }

 private:
  // What stage 1 takes: the width of the hidden layer before the cut.
  std::int64_t width_in() {
    for (std::size_t i = 0; i < part_.size(); ++i) {
      if (auto* l = dynamic_cast<nn::Linear*>(&part_.layer(i))) return l->in_features();
      if (auto* l = dynamic_cast<nn::ParallelLinear*>(&part_.layer(i))) return l->in_features();
    }
    return 0;
  }
  train::TrainConfig cfg_;
  std::shared_ptr<coll::Group> tp_, pp_, dp_;
  std::uint32_t stage_ = 0;
  nn::Model part_;
  nn::Tape tape_;
  nn::CrossEntropy ce_;
  data::Dataset data_;
  std::unique_ptr<train::DataStream> stream_;
  std::unique_ptr<optim::Optimizer> opt_;
};

}  // namespace

TROUPE_ACTOR(Shard, setup, step);

int main(int argc, char** argv) {
  troupe::init(argc, argv);  // first: a process actor re-runs this program as its worker
  int steps = 400;
  for (int i = 1; i + 1 < argc; i += 2)
    if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);

  train::TrainConfig cfg;
  cfg.hidden = {2048, 512, 2048, 512};  // layers: Linear ReLU, x4, then the output Linear
  cfg.tp_blocks = {0, 2};               // hidden layers 0 and 2 split over the tp ranks
  cfg.batch = 64;                       // per replica
  cfg.optimizer = optim::Algorithm::sgd;
  cfg.lr = 0.05f;
  cfg.momentum = 0.9f;
  // Stage 0 takes model layers [0, 4): Linear ReLU Linear ReLU, hidden layers
  // 0 and 1 (layers, not the blocks topology files count: a hidden layer's
  // block is its Linear with what follows it). A split block (hidden layer 0
  // and the Linear reading it) must stay in one stage: cut after hidden layer 1.
  const std::int64_t cut = 4;

  Runtime rt;
  auto mesh = rt.spawn_mesh<Shard>(8, cfg, Options{}.process().cpus(0.25))
                  .reshape({{"dp", 2}, {"pp", 2}, {"tp", 2}});
  coll::create_groups(rt, mesh, "tp", {.name = "tp"});
  coll::create_groups(rt, mesh, "pp", {.name = "pp"});
  coll::create_groups(rt, mesh, "dp", {.name = "dp"});
  for (auto& line : mesh.call(&Shard::setup, cut).get()) fmt::print("{}\n", line);

  const auto& shape = mesh.shape();
  float recent = 0;
  for (int s = 1; s <= steps; ++s) {
    auto losses = mesh.call(&Shard::step).get();
    float loss = 0;  // the last stage's, tp rank 0, averaged over the replicas
    for (std::size_t a = 0; a < losses.size(); ++a)
      if (shape.coord(a, "pp") == 1 && shape.coord(a, "tp") == 0) loss += losses[a] / 2;
    recent = s == 1 ? loss : 0.9f * recent + 0.1f * loss;
    if (s % 50 == 0 || s == steps) fmt::print("step {}  loss {:.4f} (running {:.4f})\n", s, loss, recent);
  }
  mesh.stop().get();
  return 0;
}
