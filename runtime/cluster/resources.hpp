#pragma once
// Node resources: what a node has (CPUs, memory, GPUs, custom labels).
#include <map>
#include <string>
#include <string_view>

#include "proto/control.capnp.h"

namespace troupe::cluster {

/// name -> amount ("CPU", "GPU", "memory" in bytes, custom names).
using ResourceMap = std::map<std::string, double>;

/// What this machine has: CPU threads, physical memory, GPUs found through CUDA.
ResourceMap detect_local_resources();
/// Parses "name=amount,name=amount" (custom resources for --resources); a
/// UsageError names the part that is wrong.
ResourceMap parse_resources(std::string_view spec);
/// "CPU=2, GPU=0, memory=23.4 GiB, ssd=1".
std::string format_resources(const ResourceMap& r);

/// "PENDING", "ALIVE", "RESTARTING", "DEAD" (the actor directory's words).
const char* state_name(proto::ActorState s) noexcept;

void to_proto(const ResourceMap& r, capnp::List<proto::Resource>::Builder out);
ResourceMap from_proto(capnp::List<proto::Resource>::Reader in);

}  // namespace troupe::cluster
