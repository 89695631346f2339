// CUDA graphs in the CUDA plugin: the capture primitives behind
// compute::Graph (device.cpp runs the step between begin and end).
#include <fmt/format.h>

#include "actors/compute/cuda/check.hpp"
#include "actors/compute/cuda/plugin.hpp"

namespace troupe::compute::plugin {

void capture_begin(void* stream, int device) {
  TROUPE_CUDA_CHECK(cudaSetDevice(device));
  TROUPE_CUDA_CHECK(cudaStreamBeginCapture(static_cast<cudaStream_t>(stream), cudaStreamCaptureModeThreadLocal));
}

void* capture_end(void* stream, const char* failure, std::size_t* nodes) {
  cudaGraph_t g = nullptr;
  const cudaError_t end = cudaStreamEndCapture(static_cast<cudaStream_t>(stream), &g);
  std::string why = failure ? failure : "";
  if (why.empty() && end != cudaSuccess)
    why = fmt::format("cudaStreamEndCapture: {} (the step allocated, synchronised or used another stream)",
                      cudaGetErrorString(end));
  if (!why.empty()) {
    cudaGetLastError();
    if (g) cudaGraphDestroy(g);
    throw DeviceError(fmt::format("graph capture failed: {}", why));
  }
  std::size_t n = 0;
  cudaGraphGetNodes(g, nullptr, &n);
  *nodes = n;
  return g;
}

void* instantiate(void* graph) {
  cudaGraphExec_t exec = nullptr;
  if (auto e = cudaGraphInstantiate(&exec, static_cast<cudaGraph_t>(graph), 0); e != cudaSuccess) {
    cudaGetLastError();
    throw DeviceError(fmt::format("cudaGraphInstantiate: {}", cudaGetErrorString(e)));
  }
  return exec;
}

void launch(void* exec, void* stream) {
  TROUPE_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec), static_cast<cudaStream_t>(stream)));
}

void graph_destroy(void* graph, void* exec) {
  if (exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec));
  if (graph) cudaGraphDestroy(static_cast<cudaGraph_t>(graph));
}

}  // namespace troupe::compute::plugin
