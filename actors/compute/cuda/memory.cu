// Device memory, streams and copies through the CUDA runtime (in the CUDA plugin).
#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "actors/compute/cuda/check.hpp"
#include "actors/compute/cuda/plugin.hpp"

namespace troupe::compute {

namespace cuda {

void fail_cuda(cudaError_t e, const char* call, const char* file, int line) {
  throw DeviceError(fmt::format("{} failed: {} ({}) at {}:{}", call, cudaGetErrorString(e), static_cast<int>(e), file, line));
}

void fail_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  throw DeviceError(fmt::format("{} failed: cuBLAS status {} at {}:{}", call, static_cast<int>(s), file, line));
}

}  // namespace cuda

namespace {

// Selects a device for the calling thread and checks that it exists.
void use_device(int device) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0)
    throw DeviceError(fmt::format("cuda:{} was asked for but no CUDA device is present", device));
  if (device < 0 || device >= n)
    throw DeviceError(fmt::format("cuda:{} was asked for but this machine has {} CUDA device(s)", device, n));
  TROUPE_CUDA_CHECK(cudaSetDevice(device));
}

__global__ void fill_kernel(float* p, std::size_t n, float v) {
  for (std::size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += std::size_t(gridDim.x) * blockDim.x) p[i] = v;
}

__global__ void strided_kernel(float* dst, const float* src, std::int64_t rows, std::int64_t cols, std::int64_t rs,
                               std::int64_t cs) {
  const std::int64_t n = rows * cols;
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x)
    dst[i] = src[(i / cols) * rs + (i % cols) * cs];
}

unsigned blocks_for(std::size_t n) { return static_cast<unsigned>(std::min<std::size_t>((n + 255) / 256, 65535)); }

}  // namespace

// The plugin's entries for memory and streams (gpu_ops.hpp): a stream is
// its cudaStream_t (null: the legacy default stream).
namespace plugin {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void* stream_create(int device) {
  use_device(device);
  cudaStream_t s{};
  TROUPE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return s;
}

void stream_destroy(void* stream, int device) {
  cudaSetDevice(device);
  cudaStreamDestroy(static_cast<cudaStream_t>(stream));
}

void stream_sync(void* stream) { TROUPE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream))); }

void* alloc(std::size_t bytes, int device) {
  use_device(device);
  void* p = nullptr;
  TROUPE_CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

void free(void* p, int device) {
  cudaSetDevice(device);
  cudaFree(p);
}

void copy(void* dst, int dst_device, const void* src, int src_device, std::size_t bytes, void* stream, bool wait) {
  use_device(dst_device >= 0 ? dst_device : src_device);
  if (stream) {
    TROUPE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream)));
    if (wait) TROUPE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
    return;
  }
  TROUPE_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
  // From pageable memory cudaMemcpy returns before its DMA lands: wait, so
  // that work on any stream (a non-blocking one too) sees the data.
  if (src_device < 0) TROUPE_CUDA_CHECK(cudaStreamSynchronize(nullptr));
}

void fill(float* p, std::size_t n, float value, int device, void* stream, bool wait) {
  use_device(device);
  fill_kernel<<<blocks_for(n), 256, 0, static_cast<cudaStream_t>(stream)>>>(p, n, value);
  TROUPE_CUDA_CHECK(cudaGetLastError());
  if (wait) TROUPE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}

void copy_strided(float* dst, const float* src, std::int64_t rows, std::int64_t cols, std::int64_t row_stride,
                  std::int64_t col_stride, int device, void* stream, bool wait) {
  use_device(device);
  strided_kernel<<<blocks_for(static_cast<std::size_t>(rows * cols)), 256, 0, static_cast<cudaStream_t>(stream)>>>(
      dst, src, rows, cols, row_stride, col_stride);
  TROUPE_CUDA_CHECK(cudaGetLastError());
  if (wait) TROUPE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
}

}  // namespace plugin

}  // namespace troupe::compute
