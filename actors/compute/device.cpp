// Device memory, streams and graphs for every build: through the CUDA
// plugin's table (gpu_ops.hpp) when it loads, refused with the reason when it
// does not (a CPU-only build, no plugin, no CUDA runtime here).
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/compute/gpu_ops.hpp"
#include "actors/compute/graph.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/stream.hpp"
#include "runtime/detail/cuda_plugin.hpp"

namespace troupe::compute {

const ComputeApi* gpu_ops_if_loaded() noexcept {
  const auto* p = troupe::detail::cuda_plugin();
  return p ? static_cast<const ComputeApi*>(p->compute_api) : nullptr;
}

const ComputeApi& gpu_ops() {
  if (const auto* ops = gpu_ops_if_loaded()) return *ops;
  throw DeviceError(fmt::format("device operations need the CUDA plugin: {}", troupe::detail::cuda_plugin_error()));
}

Stream::Stream(int device) : device_(device) { handle_ = gpu_ops().stream_create(device); }

Stream::~Stream() {
  if (handle_)
    if (const auto* ops = gpu_ops_if_loaded()) ops->stream_destroy(handle_, device_);
}

void Stream::synchronize() { gpu_ops().stream_sync(handle_); }

bool cuda_available() noexcept {
  const auto* ops = gpu_ops_if_loaded();
  return ops && ops->device_count() > 0;
}

namespace detail {

void* device_alloc(std::size_t bytes, int device) { return gpu_ops().alloc(bytes, device); }

void device_free(void* p, int device) noexcept {
  if (!p) return;
  if (const auto* ops = gpu_ops_if_loaded()) ops->free(p, device);
}

void copy_bytes(void* dst, int dst_device, const void* src, int src_device, std::size_t bytes, Stream* stream) {
  if (bytes == 0) return;
  if (dst_device < 0 && src_device < 0) {
    std::memmove(dst, src, bytes);
    return;
  }
  // Given a stream: async on it. Else synchronous, and after what this
  // thread's ops queued on their bound stream, if any.
  const auto& ops = gpu_ops();
  if (stream)
    ops.copy(dst, dst_device, src, src_device, bytes, stream->native(), false);
  else if (Stream* bound = current_stream())
    ops.copy(dst, dst_device, src, src_device, bytes, bound->native(), true);
  else
    ops.copy(dst, dst_device, src, src_device, bytes, nullptr, true);
}

void device_fill(float* p, std::size_t n, float value, int device, Stream* stream) {
  if (n == 0) return;
  if (!stream) stream = current_stream();  // ordered with the thread's ops, no wait
  gpu_ops().fill(p, n, value, device, stream ? stream->native() : nullptr, stream == nullptr);
}

void device_copy_strided(float* dst, const float* src, std::int64_t rows, std::int64_t cols, std::int64_t row_stride,
                         std::int64_t col_stride, int device, Stream* stream) {
  if (rows * cols == 0) return;
  if (!stream) stream = current_stream();
  gpu_ops().copy_strided(dst, src, rows, cols, row_stride, col_stride, device, stream ? stream->native() : nullptr,
                         stream == nullptr);
}

}  // namespace detail

Graph::~Graph() { reset(); }

void Graph::reset() noexcept {
  if (graph_ || exec_)
    if (const auto* ops = gpu_ops_if_loaded()) ops->graph_destroy(graph_, exec_);
  exec_ = graph_ = nullptr;
  nodes_ = 0;
}

void Graph::capture(Stream& stream, const std::function<void()>& fn) {
  reset();
  const auto& ops = gpu_ops();
  Stream* before = current_stream();
  ops.capture_begin(stream.native(), stream.device());
  set_stream(&stream);
  std::string failure;
  try {
    fn();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  set_stream(before);
  std::size_t nodes = 0;
  void* g = ops.capture_end(stream.native(), failure.empty() ? nullptr : failure.c_str(), &nodes);
  graph_ = g;
  nodes_ = nodes;
  try {
    exec_ = ops.instantiate(g);
  } catch (...) {
    reset();
    throw;
  }
  stream_ = &stream;
}

void Graph::launch() {
  if (!exec_) throw DeviceError("Graph::launch before a successful capture");
  gpu_ops().launch(exec_, stream_->native());
}

}  // namespace troupe::compute
