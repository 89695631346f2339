// CPU-only build: no GPUs, by construction.
#include "runtime/device.hpp"

namespace troupe {

const DeviceReport& devices() noexcept {
  static const DeviceReport report{false, "CPU-only build (no CUDA)", {}};
  return report;
}

}  // namespace troupe
