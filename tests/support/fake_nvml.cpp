// A stand-in for the NVIDIA driver's NVML library (libnvidia-ml.so.1), for
// tests on machines without a GPU: the node daemons dlopen it exactly as
// they would the driver's (runtime/cluster/node_load.cpp), and it answers
// with figures the test knows. Two GPUs: GPU 0 at 75% with 10 of 80 GiB
// used, GPU 1 at 20% with 20 of 80 GiB. GPU 0 runs every child process of
// the process that loaded it (a daemon's workers), each using 3 GiB.
#include <dirent.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "runtime/cluster/detail/nvml_abi.hpp"

namespace {

constexpr unsigned kGpus = 2;
constexpr unsigned long long kGiB = 1ull << 30;

using troupe::cluster::nvml_abi::Memory;
using troupe::cluster::nvml_abi::Process;
using troupe::cluster::nvml_abi::Utilization;

unsigned index_of(void* device) { return static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(device) - 1); }

// The parent pid of `pid` (field 4 of /proc/PID/stat, after the command).
long parent_of(const std::string& pid) {
  std::ifstream st("/proc/" + pid + "/stat");
  std::string line;
  if (!std::getline(st, line)) return -1;
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 4 > line.size()) return -1;
  return std::strtol(line.c_str() + close + 4, nullptr, 10);
}

}  // namespace

extern "C" {

int nvmlInit_v2() { return 0; }

int nvmlDeviceGetCount_v2(unsigned* count) {
  *count = kGpus;
  return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned index, void** device) {
  if (index >= kGpus) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *device = reinterpret_cast<void*>(static_cast<std::uintptr_t>(index + 1));
  return 0;
}

int nvmlDeviceGetMemoryInfo(void* device, Memory* m) {
  m->total = 80 * kGiB;
  m->used = (index_of(device) + 1) * 10 * kGiB;
  m->free = m->total - m->used;
  return 0;
}

int nvmlDeviceGetUtilizationRates(void* device, Utilization* u) {
  u->gpu = index_of(device) == 0 ? 75 : 20;
  u->memory = 10;
  return 0;
}

int nvmlDeviceGetComputeRunningProcesses_v2(void* device, unsigned* count, Process* out) {
  unsigned n = 0;
  if (index_of(device) == 0) {
    const long me = ::getpid();
    if (DIR* d = ::opendir("/proc")) {
      while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name.find_first_not_of("0123456789") != std::string::npos || parent_of(name) != me) continue;
        if (n == *count) {
          ::closedir(d);
          *count = n + 1;
          return 7;  // NVML_ERROR_INSUFFICIENT_SIZE
        }
        out[n++] = Process{static_cast<unsigned>(std::strtoul(name.c_str(), nullptr, 10)), 3 * kGiB, 0, 0};
      }
      ::closedir(d);
    }
  }
  *count = n;
  return 0;
}

}  // extern "C"
