// CUDA build: device groups run on NCCL (when the build found it) or on the
// device-local backend.
#include <cstdlib>
#include <cstring>

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "runtime/coll/cuda_local.hpp"
#include "runtime/coll/gpu.hpp"
#ifdef TROUPE_HAVE_NCCL
#include "runtime/coll/nccl.hpp"
#endif

namespace troupe::coll::gpu {

bool built() noexcept { return true; }

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

std::unique_ptr<Backend> make_backend(const GroupSpec& spec, const std::atomic<bool>* cancel) {
  if (spec.backend == "cuda_local") return std::make_unique<CudaLocalGroup>(spec, cancel);
  if (spec.backend == "nccl") {
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
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess || (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged)) {
    cudaGetLastError();
    throw UsageError(fmt::format("group '{}' ({}) is a device group: the {} buffer at {} is host memory", spec.name,
                                 spec.backend, what, p));
  }
  if (a.type == cudaMemoryTypeDevice && a.device != device)
    throw UsageError(fmt::format("group '{}': rank {} runs on CUDA device {} but its {} buffer is on device {}",
                                 spec.name, spec.rank, device, what, a.device));
}

std::shared_ptr<void> record_ready(void* stream) {
  cudaEvent_t ev = nullptr;
  if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  cudaEventRecord(ev, static_cast<cudaStream_t>(stream));
  return std::shared_ptr<void>(ev, [](void* e) { cudaEventDestroy(static_cast<cudaEvent_t>(e)); });
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  if (auto e = cudaMalloc(&p_, bytes ? bytes : 1); e != cudaSuccess) {
    cudaGetLastError();
    throw Error(fmt::format("cudaMalloc of {} bytes: {}", bytes, cudaGetErrorString(e)));
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (p_) cudaFree(p_);
}

void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  if (auto e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice); e != cudaSuccess)
    throw Error(fmt::format("copy of {} bytes to the device: {}", bytes, cudaGetErrorString(e)));
}

void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (!bytes) return;
  if (auto e = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost); e != cudaSuccess)
    throw Error(fmt::format("copy of {} bytes from the device: {}", bytes, cudaGetErrorString(e)));
}

}  // namespace troupe::coll::gpu
