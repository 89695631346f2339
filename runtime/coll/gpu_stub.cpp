// CPU-only build: device groups are refused with a clear error.
#include <fmt/format.h>

#include "runtime/coll/detail/gpu.hpp"

namespace troupe::coll::gpu {

bool built() noexcept { return false; }
int default_device() noexcept { return 0; }

std::unique_ptr<Backend> make_backend(const GroupSpec& spec, const std::atomic<bool>*) {
  throw CollectiveError(fmt::format("group '{}': device buffers need a CUDA build of troupe (this one is CPU-only)",
                                    spec.name));
}

std::shared_ptr<void> record_ready(void*) { return nullptr; }

void check_device_buffer(const GroupSpec& spec, int, const void*, std::size_t, const char*) {
  throw UsageError(fmt::format("group '{}': device buffers need a CUDA build of troupe (this one is CPU-only)", spec.name));
}

DeviceBuffer::DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
  throw Error("device memory needs a CUDA build of troupe (this one is CPU-only)");
}
DeviceBuffer::~DeviceBuffer() = default;
void copy_to_device(void*, const void*, std::size_t) {
  throw Error("device memory needs a CUDA build of troupe (this one is CPU-only)");
}
void copy_to_host(void*, const void*, std::size_t) {
  throw Error("device memory needs a CUDA build of troupe (this one is CPU-only)");
}

}  // namespace troupe::coll::gpu
