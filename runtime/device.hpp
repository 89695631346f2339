#pragma once
// GPUs visible to this process: found through the CUDA runtime when the build
// has CUDA and a driver is present; none otherwise.
#include <cstddef>
#include <string>
#include <vector>

namespace troupe {

struct GpuInfo {
  int index = 0;
  std::string name;
  std::size_t memory_bytes = 0;
  int compute_major = 0, compute_minor = 0;
};

struct DeviceReport {
  bool cuda_built = false;   ///< this binary was built with CUDA
  std::string status;        ///< e.g. "2 GPUs", "no CUDA driver", "CPU-only build"
  std::vector<GpuInfo> gpus;
};

/// Probes the GPUs (cheap after the first call; never throws).
const DeviceReport& devices() noexcept;

}  // namespace troupe
