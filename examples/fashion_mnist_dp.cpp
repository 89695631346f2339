// Data-parallel training from C++: the run examples/topologies/fashion_mnist_dp.toml
// describes, written as a driver program. Copy it and change what you need.
//
//   build/bin/fashion_mnist_dp [--epochs N] [--replicas N] [--checkpoints DIR] [--address HOST:PORT]
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "runtime/troupe.hpp"
#include "trainers/data_parallel.hpp"

int main(int argc, char** argv) {
  troupe::init(argc, argv);  // first: a process actor re-runs this program as its worker

  troupe::dp::ReplicaConfig model;  // what every replica holds and how it learns
  model.hidden = {512, 256};        // MLP 784-512-256-10 on Fashion-MNIST
  model.batch = 64;                 // per replica: global batch 128 with 2 replicas
  model.epochs = 8;
  model.optimizer = troupe::optim::Algorithm::sgd;
  model.lr = 0.1f;
  model.momentum = 0.9f;
  model.schedule = troupe::optim::LrKind::cosine;
  model.warmup_steps = 100;

  troupe::dp::TrainerOptions run;
  run.replicas = 2;                 // one worker process each
  run.checkpoint_dir = "runs/fashion_mnist_dp_cpp/checkpoints";
  run.checkpoint_every = 500;       // a killed replica costs at most 500 steps

  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--epochs")) model.epochs = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--replicas")) run.replicas = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--checkpoints")) run.checkpoint_dir = argv[i + 1];
  }

  troupe::Runtime rt;
  troupe::dp::DataParallelTrainer trainer(rt, model, run);
  auto result = trainer.fit([](const troupe::dp::Progress& p) {
    fmt::print("step {}/{}  epoch {}  loss {:.4f}  {:.0f} samples/s{}\n", p.step, p.total_steps, p.epoch, p.loss,
               p.samples_per_s, p.evaluated ? fmt::format("  test accuracy {:.4f}", p.test_accuracy) : "");
  });
  fmt::print("done: {} steps, test accuracy {:.4f}, {:.0f} samples/s\n", result.steps, result.accuracy,
             result.samples_per_s);
  return 0;
}
