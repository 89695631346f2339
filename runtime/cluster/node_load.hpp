#pragma once
// What a node's machine and its workers use now: CPU and memory from /proc,
// GPU use and memory from NVML when the driver's libnvidia-ml is there
// (loaded at first use; a machine without it reports no GPUs, not an error).
// The node daemon samples it every heartbeat; the head for its own node.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "proto/control.capnp.h"

namespace troupe::cluster {

struct GpuLoad {
  unsigned index = 0;
  double util = 0;  ///< 0..1
  std::uint64_t mem_used = 0, mem_total = 0;
};

struct WorkerLoad {
  std::uint64_t actor = 0;
  std::uint32_t pid = 0;
  std::uint64_t rss = 0;      ///< bytes
  double cpu = 0;             ///< of one core since the last sample
  std::uint64_t gpu_mem = 0;  ///< bytes NVML counts for the pid
};

struct NodeLoad {
  double cpu = 0;  ///< the host's CPUs, 0..1 since the last sample
  std::uint64_t mem_used = 0, mem_total = 0;
  std::vector<GpuLoad> gpus;
  std::vector<WorkerLoad> workers;
  bool sampled = false;  ///< false: no sample yet
};

void to_proto(const NodeLoad& l, proto::NodeLoad::Builder b);
NodeLoad load_from_proto(proto::NodeLoad::Reader r);

/// Samples /proc and NVML; CPU shares are over the time since the last call.
class LoadSampler {
 public:
  /// `workers`: actor id -> pid.
  NodeLoad sample(const std::map<std::uint64_t, pid_t>& workers);
  /// Whether a sample is due: the first, then one a second, whatever the
  /// caller's period (fast heartbeats must stay cheap).
  bool due() const;

 private:
  std::uint64_t last_busy_ = 0, last_total_ = 0;
  std::map<pid_t, std::uint64_t> last_ticks_;
  double last_time_ = 0;
};

}  // namespace troupe::cluster
