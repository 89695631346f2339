#pragma once
// Collective groups on device buffers (GroupOptions::memory = Memory::cuda):
//   nccl        one GPU per rank (NCCL; its unique id goes through the
//               rendezvous store, a Cap'n Proto message on the control plane);
//   cuda_local  ranks that share one GPU, which NCCL refuses: in one process
//               or across processes (CUDA IPC), synchronised through a
//               shared-memory group on the host.
// CPU-only builds link stubs that refuse device groups with a clear error.
#include <atomic>
#include <cstddef>
#include <memory>

#include "runtime/coll/backend.hpp"
#include "runtime/coll/shm.hpp"

namespace troupe::coll::gpu {

/// The backend for a device group's rank (spec.backend is nccl or cuda_local).
std::unique_ptr<Backend> make_backend(const GroupSpec& spec, const std::atomic<bool>* cancel);

/// A CUDA event recorded now on `stream` (a cudaStream_t; null: the legacy
/// default stream), or null in a CPU-only build. Operations issued after
/// Group::after(stream) make the group's stream wait for it.
std::shared_ptr<void> record_ready(void* stream);

/// Whether this build can run device groups.
bool built() noexcept;

/// The device a rank of this process uses when its group does not name one:
/// $TROUPE_DEVICE (what the daemon gave a GPU worker), else 0.
int default_device() noexcept;

/// CUDA builds, for the device backends: UsageError unless [p, p + bytes) is
/// device (or managed) memory on `device`, naming the group, rank and buffer.
void check_device_buffer(const GroupSpec& spec, int device, const void* p, std::size_t bytes, const char* what);

/// A device buffer for tests and small programs (cudaMalloc on the current
/// device; freed when it goes). Throws Error in a CPU-only build or when the
/// allocation fails.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* data() const noexcept { return p_; }
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};
/// Synchronous copies between host and device memory (cudaMemcpy).
void copy_to_device(void* dst, const void* src, std::size_t bytes);
void copy_to_host(void* dst, const void* src, std::size_t bytes);

}  // namespace troupe::coll::gpu
