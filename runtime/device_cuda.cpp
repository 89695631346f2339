// CUDA build: asks the CUDA runtime. A machine without a driver reports no GPUs.
#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include "runtime/device.hpp"

namespace troupe {

namespace {
DeviceReport probe() {
  DeviceReport r;
  r.cuda_built = true;
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    r.status = fmt::format("no usable CUDA device ({})", cudaGetErrorString(err));
    return r;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    r.gpus.push_back(GpuInfo{i, p.name, p.totalGlobalMem, p.major, p.minor});
  }
  r.status = fmt::format("{} GPU{}", r.gpus.size(), r.gpus.size() == 1 ? "" : "s");
  return r;
}
}  // namespace

const DeviceReport& devices() noexcept {
  static const DeviceReport report = probe();
  return report;
}

}  // namespace troupe
