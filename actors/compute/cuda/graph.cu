// CUDA graphs: capture on the caller's stream, instantiate, replay.
#include <fmt/format.h>

#include "actors/compute/cuda/check.hpp"
#include "actors/compute/graph.hpp"

namespace troupe::compute {

// ops.hpp (C++20, not for nvcc here): the stream this thread's ops are bound to.
void set_stream(Stream* stream) noexcept;
Stream* current_stream() noexcept;

Graph::~Graph() { reset(); }

void Graph::reset() noexcept {
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
  exec_ = graph_ = nullptr;
  nodes_ = 0;
}

void Graph::capture(Stream& stream, const std::function<void()>& fn) {
  reset();
  auto s = static_cast<cudaStream_t>(stream.native());
  Stream* before = current_stream();
  TROUPE_CUDA_CHECK(cudaSetDevice(stream.device()));
  TROUPE_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  set_stream(&stream);
  std::string failure;
  try {
    fn();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  set_stream(before);
  cudaGraph_t g = nullptr;
  const cudaError_t end = cudaStreamEndCapture(s, &g);
  if (failure.empty() && end != cudaSuccess)
    failure = fmt::format("cudaStreamEndCapture: {} (the step allocated, synchronised or used another stream)",
                          cudaGetErrorString(end));
  if (!failure.empty()) {
    cudaGetLastError();
    if (g) cudaGraphDestroy(g);
    throw DeviceError(fmt::format("graph capture failed: {}", failure));
  }
  graph_ = g;
  std::size_t n = 0;
  cudaGraphGetNodes(g, nullptr, &n);
  nodes_ = n;
  cudaGraphExec_t exec = nullptr;
  if (auto e = cudaGraphInstantiate(&exec, g, 0); e != cudaSuccess) {
    cudaGetLastError();
    reset();
    throw DeviceError(fmt::format("cudaGraphInstantiate: {}", cudaGetErrorString(e)));
  }
  exec_ = exec;
  stream_ = &stream;
}

void Graph::launch() {
  if (!exec_) throw DeviceError("Graph::launch before a successful capture");
  TROUPE_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), static_cast<cudaStream_t>(stream_->native())));
}

}  // namespace troupe::compute
