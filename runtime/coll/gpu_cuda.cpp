// CUDA build: device groups run on NCCL (when the build found it) or on the
// device-local backend.
#include <cstdlib>
#include <cstring>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "runtime/coll/detail/cuda_api.hpp"
#include "runtime/coll/detail/cuda_local.hpp"
#include "runtime/coll/detail/gpu.hpp"
#include "runtime/detail/cuda_plugin.hpp"
#ifdef TROUPE_HAVE_NCCL
#include "runtime/coll/detail/nccl.hpp"
#include "runtime/coll/detail/nccl_api.hpp"
#endif

namespace troupe::coll::gpu {

bool built() noexcept { return true; }

const CudaRuntimeApi& cu() {
  const auto* p = troupe::detail::cuda_plugin();
  if (!p || !p->runtime_api)
    throw CollectiveError(fmt::format("device groups need the CUDA plugin: {}", troupe::detail::cuda_plugin_error()));
  return *static_cast<const CudaRuntimeApi*>(p->runtime_api);
}

int default_device() noexcept {
  const char* dev = std::getenv("TROUPE_DEVICE");
  if (!dev || !*dev) return 0;
  // A worker whose devices were masked (CUDA_VISIBLE_DEVICES = its devices)
  // sees its first device as 0.
  const char* all = std::getenv("TROUPE_DEVICES");
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  if (all && visible && std::strcmp(all, visible) == 0) return 0;
  return std::atoi(dev);
}

#ifdef TROUPE_HAVE_NCCL
const NcclApi& nc() {
  const auto& api = cu();
  if (!api.nccl) throw CollectiveError("the CUDA plugin was built without NCCL: nccl groups are not available");
  return *static_cast<const NcclApi*>(api.nccl);
}
#endif

std::unique_ptr<Backend> make_backend(const GroupSpec& spec, const std::atomic<bool>* cancel) {
  if (spec.backend == BackendKind::cuda_local) return std::make_unique<CudaLocalGroup>(spec, cancel);
  if (spec.backend == BackendKind::nccl) {
#ifdef TROUPE_HAVE_NCCL
    return std::make_unique<NcclGroup>(spec, cancel);
#else
    throw CollectiveError(fmt::format("group '{}': this build of troupe has CUDA but no NCCL", spec.name));
#endif
  }
  throw CollectiveError(fmt::format("group '{}': backend '{}' does not take device buffers", spec.name, spec.backend));
}

void check_device_buffer(const GroupSpec& spec, int device, const void* p, std::size_t bytes, const char* what) {
  if (bytes == 0) return;
  cudaPointerAttributes a{};
  if (cu().cudaPointerGetAttributes(&a, p) != cudaSuccess || (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)) {
    cu().cudaGetLastError();
    throw UsageError(fmt::format("group '{}' ({}) is a device group: the {} buffer at {} is host memory", spec.name,
                                 spec.backend, what, p));
  }
  if (a.type == cudaMemoryTypeDevice && a.device != device)
    throw UsageError(fmt::format("group '{}': rank {} runs on CUDA device {} but its {} buffer is on device {}",
                                 spec.name, spec.rank, device, what, a.device));
}

std::shared_ptr<void> record_ready(void* stream) {
  cudaEvent_t ev = nullptr;
  if (cu().cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) {
    cu().cudaGetLastError();
    return nullptr;
  }
  cu().cudaEventRecord(ev, static_cast<cudaStream_t>(stream));
  return std::shared_ptr<void>(ev, [](void* e) { cu().cudaEventDestroy(static_cast<cudaEvent_t>(e)); });
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  if (auto e = cu().cudaMalloc(&p_, bytes ? bytes : 1); e != cudaSuccess) {
    cu().cudaGetLastError();
    throw Error(fmt::format("cudaMalloc of {} bytes: {}", bytes, cu().cudaGetErrorString(e)));
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (p_) cu().cudaFree(p_);
}

void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  if (auto e = cu().cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice); e != cudaSuccess)
    throw Error(fmt::format("copy of {} bytes to the device: {}", bytes, cu().cudaGetErrorString(e)));
}

void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  if (auto e = cu().cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost); e != cudaSuccess)
    throw Error(fmt::format("copy of {} bytes from the device: {}", bytes, cu().cudaGetErrorString(e)));
}

}  // namespace troupe::coll::gpu
