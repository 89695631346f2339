// troupe-bench step: one training step (forward, backward, SGD with momentum)
// of an MLP 784-1024-1024-10 at batch 128, on the host with 1 and 2 threads
// and, when a GPU answers, on it at several batches; PyTorch's same step in
// the same run (tools/bench/step_torch.py through Debian's python3).
#include <cstdlib>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "actors/compute/graph.hpp"
#include "actors/compute/half.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/stream.hpp"
#include "actors/nn/layers.hpp"
#include "actors/nn/loss.hpp"
#include "actors/nn/model.hpp"
#include "actors/optim/optimizer.hpp"
#include "tools/bench/report.hpp"

namespace troupe::bench {

namespace {

using compute::Tensor;

// Samples per second of the step at this batch on dev; `graph`: on a GPU,
// the step recorded once as a CUDA graph and replayed; `dtype`: the input's
// (and so the activations') element type, bf16/f16 on a GPU only.
double time_steps(std::int64_t batch, compute::Device dev, double seconds, bool graph = false,
                  compute::DType dtype = compute::DType::f32) {
  auto model = nn::Model::mlp({}, 1);
  model.to(dev);
  optim::Sgd sgd({0.01f, 0.9f});
  std::vector<float> xv(static_cast<std::size_t>(batch * 784));
  std::vector<std::int32_t> yv(static_cast<std::size_t>(batch));
  nn::Rng rng(5);
  for (auto& v : xv) v = rng.uniform(-1, 1);
  for (auto& v : yv) v = static_cast<std::int32_t>(rng.next() % 10);
  Tensor x = Tensor::from(xv, {batch, 784}).to(dev), y = Tensor::from_i32(yv, {batch}).to(dev);
  if (dtype != compute::DType::f32) x = compute::cast_to(x, dtype);
  nn::Tape tape;
  nn::CrossEntropy ce;
  auto params = model.params();
  std::function<void()> step = [&]() {
    model.zero_grad();
    model.backward(ce.forward_backward(model.forward(x, tape), y), tape);
    sgd.step(params);
  };
  std::optional<compute::Stream> stream;
  if (dev.is_cuda()) {
    stream.emplace(dev.index);
    compute::set_stream(&*stream);
  }
  for (int i = 0; i < 5; ++i) step();
  (void)ce.loss();  // waits for a device
  compute::Graph g;
  if (graph) g.capture(*stream, step);
  auto run = [&]() {
    if (graph)
      g.launch();
    else
      step();
  };
  std::int64_t steps = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds || steps < 10) {
    for (int i = 0; i < 10; ++i) run();
    steps += 10;
    (void)ce.loss();  // a read-back: waits for the bound stream
    elapsed = micros(Clock::now() - start) / 1e6;
  }
  if (stream) {
    stream->synchronize();
    compute::set_stream(nullptr);
  }
  return static_cast<double>(steps * batch) / elapsed;
}

Row step_row(const std::string& system, const std::string& device, int threads, std::int64_t batch, double sps,
             const std::string& mode = "eager", const std::string& dtype = "f32") {
  Row r;
  r.set("system", system)
      .set("device", device)
      .set("mode", mode)
      .set("dtype", dtype)
      .set("threads", static_cast<std::int64_t>(threads))
      .set("batch", batch)
      .set("samples_per_s", sps);
  return r;
}

}  // namespace

std::vector<Row> step_rows(const StepConfig& cfg, std::vector<std::string>& notes) {
  std::vector<Row> rows;
  for (int t : cfg.threads) {
    compute::set_num_threads(t);
    rows.push_back(step_row("troupe", "cpu", t, 128, time_steps(128, compute::Device::cpu(), cfg.seconds)));
  }
  const bool gpu = compute::cuda_available();
  if (gpu) {
    using compute::DType;
    for (auto b : cfg.gpu_batches) {
      for (auto [graph, dtype] : {std::pair{false, DType::f32}, {true, DType::f32}, {false, DType::bf16},
                                  {true, DType::bf16}, {true, DType::f16}}) {
        const std::string mode = graph ? "graph" : "eager";
        try {
          rows.push_back(step_row("troupe", "cuda", 0, b, time_steps(b, compute::Device::cuda(0), cfg.seconds, graph, dtype),
                                  mode, compute::dtype_name(dtype)));
        } catch (const std::exception& e) {
          notes.push_back(fmt::format("{} {} row at batch {} failed: {}", mode, compute::dtype_name(dtype), b, e.what()));
        }
      }
    }
  } else {
    notes.push_back("cuda rows skipped: no CUDA device here");
  }
  const std::string py = peer_python();
  const std::string script = bench_script("step_torch.py");
  if (std::system(fmt::format("{} -c 'import torch' > /dev/null 2>&1", py).c_str()) == 0) {
    // One process per thread count, its BLAS and OpenMP pinned to it: Debian's
    // torch runs its products in OpenBLAS, whose threads torch.set_num_threads
    // does not limit (its "1 thread" otherwise uses every core).
    bool first = true;
    for (int t : cfg.threads) {
      std::string batches = "128";
      if (gpu && first)
        for (auto b : cfg.gpu_batches) batches += fmt::format(",{}", b);
      std::istringstream out(run_capture(fmt::format(
          "OMP_NUM_THREADS={0} OPENBLAS_NUM_THREADS={0} MKL_NUM_THREADS={0} {1} {2} {0} {3} {4} {5} 2>/dev/null", t, py,
          script, batches, cfg.seconds, gpu && first ? 1 : 0)));
      first = false;
      std::string device;
      int threads = 0;
      std::int64_t batch = 0;
      double sps = 0;
      while (out >> device >> threads >> batch >> sps) rows.push_back(step_row("torch", device, threads, batch, sps));
    }
  } else {
    notes.push_back("torch rows skipped: python3-torch is not installed (tools/install-peers.sh)");
  }
  notes.push_back("MLP 784-1024-1024-10, softmax cross-entropy, SGD momentum 0.9; samples/s over >= 2 s after warm-up; "
                  "torch rows pin OMP/OpenBLAS/MKL threads to the count shown; bf16/f16 rows: half activations and "
                  "products (float32 accumulation), float32 weights and update");
  return rows;
}

}  // namespace troupe::bench
