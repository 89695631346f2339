#pragma once
// A CUDA stream on one device (an opaque handle here: no CUDA header leaks).
// In a build without CUDA, or with no device, making one is a DeviceError.
#include <cstddef>
#include <cstdint>

namespace troupe::compute {

class Stream {
 public:
  explicit Stream(int device = 0);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  int device() const noexcept { return device_; }
  void* native() const noexcept { return handle_; }  ///< the cudaStream_t
  void synchronize();

 private:
  int device_ = 0;
  void* handle_ = nullptr;
};

/// True when this build has CUDA and at least one device answers.
bool cuda_available() noexcept;

namespace detail {
// Device memory and copies: compute/cuda/memory.cu, or the stubs that refuse.
void* device_alloc(std::size_t bytes, int device);
void device_free(void* p, int device) noexcept;
/// dst and src each on the host (device < 0) or a device; async on stream
/// when one is given and either side is a device, else synchronous (on the
/// thread's bound stream, after its queued work, when one is bound).
/// device_fill and device_copy_strided without a stream use the bound one
/// (no wait), else the legacy stream, waited for.
void copy_bytes(void* dst, int dst_device, const void* src, int src_device, std::size_t bytes, Stream* stream);
void device_fill(float* p, std::size_t n, float value, int device, Stream* stream);
/// 2-D strided gather into a contiguous device buffer (for transposed views).
void device_copy_strided(float* dst, const float* src, std::int64_t rows, std::int64_t cols, std::int64_t row_stride,
                         std::int64_t col_stride, int device, Stream* stream);
}  // namespace detail

}  // namespace troupe::compute
