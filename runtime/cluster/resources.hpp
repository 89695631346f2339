#pragma once
// Node resources: what a node has (CPUs, memory, GPUs, custom labels).
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>
#include <string_view>

#include "proto/control.capnp.h"

namespace troupe::cluster {

/// name -> amount ("CPU", "GPU", "memory" in bytes, custom names).
using ResourceMap = std::map<std::string, double>;

/// What this machine has: CPU threads, physical memory, GPUs found through CUDA.
ResourceMap detect_local_resources();

/// What a node offers: detected, then overridden or extended by what it was
/// given (--resources). `detected` names the entries that came from the
/// machine itself (CPU, memory, GPU unless given): daemons on one host share
/// those, so the head counts them once per host (host_shares).
struct NodeResources {
  ResourceMap total;
  std::set<std::string> detected;
  std::string host;  ///< host_identity()
};
/// detect_local_resources() with `declared` ("name=amount,...") applied.
NodeResources local_node_resources(std::string_view declared = {});
/// This machine as the head tells hosts apart: its machine id, boot id and
/// network namespace (a namespace stands for a host of its own, as the
/// multi-host tests build them, and containers get their own resources).
std::string host_identity();

/// One node as host_shares sees it.
struct HostMember {
  std::uint64_t id = 0;
  std::string host;
  ResourceMap reported;
  std::set<std::string> detected;
  bool alive = true;
};
/// What each node may hand out, and the node it shares its host with (0:
/// none). The first live node of a host keeps what it detected; the others
/// keep only what they were given, so two daemons on one machine do not both
/// hand out all of its CPUs, memory and GPUs. A dead owner's share passes to
/// the next live node of its host.
struct HostShare {
  ResourceMap total;
  std::uint64_t shares_with = 0;
};
std::map<std::uint64_t, HostShare> host_shares(const std::vector<HostMember>& nodes);
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
