// GPUs, as the CUDA plugin finds them (runtime/detail/cuda_plugin.hpp): none
// in a CPU-only build, or where the plugin or a driver is missing.
#include "runtime/device.hpp"

#include <fmt/format.h>

#include "runtime/detail/cuda_plugin.hpp"

namespace troupe {

namespace {
DeviceReport probe() {
  DeviceReport r;
  r.cuda_built = detail::cuda_plugin_built();
  const auto* p = detail::cuda_plugin();
  if (!p) {
    r.status = detail::cuda_plugin_built() ? fmt::format("no CUDA ({})", detail::cuda_plugin_error())
                                           : "CPU-only build (no CUDA)";
    return r;
  }
  char why[256] = {};
  const int n = p->device_count(why, sizeof why);
  if (n < 0) {
    r.status = fmt::format("no usable CUDA device ({})", why);
    return r;
  }
  for (int i = 0; i < n; ++i) {
    char name[256] = {};
    GpuInfo g;
    g.index = i;
    if (!p->device_info(i, name, sizeof name, &g.memory_bytes, &g.compute_major, &g.compute_minor)) continue;
    g.name = name;
    r.gpus.push_back(std::move(g));
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
