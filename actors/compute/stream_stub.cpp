// A build without CUDA: host memory works, anything on a device is refused.
#include <cstring>

#include "actors/compute/errors.hpp"
#include "actors/compute/stream.hpp"

namespace troupe::compute {

namespace {
[[noreturn]] void no_cuda(const char* what) {
  throw DeviceError(std::string(what) + ": this build of troupe has no CUDA (configure with the CUDA toolkit present)");
}
}  // namespace

Stream::Stream(int device) : device_(device) { no_cuda("a CUDA stream"); }
Stream::~Stream() = default;
void Stream::synchronize() {}
bool cuda_available() noexcept { return false; }

namespace detail {
void* device_alloc(std::size_t, int) { no_cuda("device memory"); }
void device_free(void*, int) noexcept {}
void copy_bytes(void* dst, int dst_device, const void* src, int src_device, std::size_t bytes, Stream*) {
  if (dst_device >= 0 || src_device >= 0) no_cuda("a device copy");
  std::memmove(dst, src, bytes);
}
void device_fill(float*, std::size_t, float, int, Stream*) { no_cuda("a device fill"); }
void device_copy_strided(float*, const float*, std::int64_t, std::int64_t, std::int64_t, std::int64_t, int, Stream*) {
  no_cuda("a device copy");
}
}  // namespace detail

}  // namespace troupe::compute
