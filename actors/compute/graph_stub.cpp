// Build without CUDA: graphs cannot be made.
#include "actors/compute/errors.hpp"
#include "actors/compute/graph.hpp"

namespace troupe::compute {

Graph::~Graph() = default;
void Graph::reset() noexcept {}
void Graph::capture(Stream&, const std::function<void()>&) {
  throw DeviceError("CUDA graphs need a CUDA build of troupe (this one is CPU-only)");
}
void Graph::launch() { throw DeviceError("CUDA graphs need a CUDA build of troupe (this one is CPU-only)"); }

}  // namespace troupe::compute
