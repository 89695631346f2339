#pragma once
// A training step recorded once and replayed with one launch (a CUDA graph):
// at small batches a step is a few dozen short kernels, and launching them one
// by one from the host costs more than running them.
//
//   compute::Stream s(0);
//   compute::Graph g;
//   step();                            // once for real: buffers, optimizer state
//   g.capture(s, [&] { step(); });     // recorded, not run
//   for (...) g.launch();              // one launch per step
//
// What `fn` does is recorded as it would run on `stream` (the ops bind to it
// during capture): it must not allocate device memory, wait for the device or
// read results back, and it replays with the same buffers and the same scalar
// arguments (learning rate, first-step flags): capture again when they change.
// A capture that breaks these rules fails with a DeviceError naming the cause,
// and the graph stays empty.
#include <functional>

#include "actors/compute/errors.hpp"
#include "actors/compute/stream.hpp"

namespace troupe::compute {

class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  void capture(Stream& stream, const std::function<void()>& fn);
  /// Runs the recorded work once on its stream (asynchronously).
  void launch();
  bool ready() const noexcept { return exec_ != nullptr; }
  /// Kernel and copy nodes recorded.
  std::size_t nodes() const noexcept { return nodes_; }

 private:
  void reset() noexcept;
  void* graph_ = nullptr;
  void* exec_ = nullptr;
  Stream* stream_ = nullptr;
  std::size_t nodes_ = 0;
};

}  // namespace troupe::compute
