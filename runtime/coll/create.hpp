#pragma once
// Making a collective group from the driver, out of actors (a mesh or a list,
// ranks in order), as ray.util.collective.create_collective_group does.
//
//   auto info = troupe::coll::create_group(rt, replicas, {.name = "dp"});
//
// Each member learns its rank in order with the calls sent to it (a call sent
// after create_group finds the group there). The driver watches the members:
// when one dies, every other member's group is aborted at once, so pending
// and later operations fail naming the dead rank; rebuild with a new
// create_group of the survivors (or restarted members) under the same name.
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/cluster/client.hpp"
#include "runtime/coll/group.hpp"
#include "runtime/mesh.hpp"
#include "runtime/runtime.hpp"

namespace troupe::coll {

struct GroupOptions {
  std::string name = "default";
  /// Host buffers: "auto" (shm on one host, else tcp), "shm" or "tcp".
  /// Device buffers: "auto" (nccl when every rank has its own GPU, cuda_local
  /// when all share one), "nccl" or "cuda_local".
  std::string backend = "auto";
  std::string memory = "host";    ///< where the buffers live: "host" or "cuda"
  std::vector<int> devices;       ///< cuda: the device of each in-process member by rank (default 0);
                                  ///< process members use the GPU their worker was given
  std::uint64_t staging_bytes = 4ull << 20;
  std::uint64_t p2p_bytes = 1ull << 20;
  std::uint64_t heap_bytes = 1ull << 30;  ///< room for alloc() buffers (touched lazily)
  std::uint32_t timeout_ms = 120000;      ///< longest wait on a peer before failing
};

struct GroupInfo {
  std::string name, backend;
  std::uint64_t uid = 0;
  std::uint32_t world = 0;
};

namespace detail {
/// Where a member runs, and how to reach it to join or abort.
struct Member {
  std::uint64_t id = 0;                          ///< actor id (local cells)
  std::weak_ptr<remote::RemoteActor> remote;     ///< process actors
  std::uint64_t node = 0;
  std::string name;
  int device = 0;  ///< cuda groups: the GPU it uses on its node
};
void join_member(const Member& m, const GroupSpec& spec);
void abort_members(const std::vector<Member>& ms, std::size_t dead, const GroupSpec& spec, const std::string& why);
std::uint64_t fresh_uid();
std::string check_backend(Runtime& rt, const std::vector<Member>& ms, const std::string& backend);
/// Device groups: "nccl" (a GPU per rank) or "cuda_local" (one GPU for all), or UsageError.
std::string check_device_backend(Runtime& rt, const std::vector<Member>& ms, const std::string& backend);
std::string driver_host(Runtime& rt);
}  // namespace detail

template <class T>
GroupInfo create_group(Runtime& rt, const std::vector<ActorRef<T>>& members, const GroupOptions& o = {}) {
  if (members.empty()) throw UsageError("create_group: a group needs at least one member");
  if (members.size() > kMaxRanks)
    throw UsageError(fmt::format("create_group: {} members (at most {})", members.size(), kMaxRanks));
  std::vector<detail::Member> ms;
  for (const auto& a : members) {
    if (!a.valid()) throw UsageError("create_group: an empty ActorRef among the members");
    if (!a.alive()) throw UsageError(fmt::format("create_group: member {} is dead", a.id()));
    detail::Member m;
    m.id = a.id();
    m.name = a.name();
    if (a.remote()) {
      m.remote = a.remote()->weak_from_this();
      m.node = a.remote()->node();
      const auto devs = a.remote()->devices();
      m.device = devs.empty() ? 0 : static_cast<int>(devs.front());
    } else if (o.memory == "cuda") {
      const auto r = ms.size();
      if (!o.devices.empty() && o.devices.size() != members.size())
        throw UsageError(fmt::format("create_group: {} devices given for {} members", o.devices.size(), members.size()));
      m.device = o.devices.empty() ? 0 : o.devices[r];
    }
    ms.push_back(std::move(m));
  }
  if (o.memory != "host" && o.memory != "cuda")
    throw UsageError(fmt::format("create_group: memory '{}' (host or cuda)", o.memory));
  GroupSpec base;
  base.name = o.name;
  base.uid = detail::fresh_uid();
  base.world = static_cast<std::uint32_t>(ms.size());
  base.memory = o.memory;
  base.backend = o.memory == "cuda" ? detail::check_device_backend(rt, ms, o.backend) : detail::check_backend(rt, ms, o.backend);
  base.staging_bytes = o.staging_bytes;
  base.p2p_bytes = o.p2p_bytes;
  base.heap_bytes = o.heap_bytes;
  base.timeout_ms = o.timeout_ms;
  for (std::size_t r = 0; r < ms.size(); ++r) {
    GroupSpec s = base;
    s.rank = static_cast<std::uint32_t>(r);
    s.host = detail::driver_host(rt);  // a worker that dialled in from another host uses its own address
    if (o.memory == "cuda") s.device = ms[r].remote.expired() ? ms[r].device : -1;  // a worker knows its own
    detail::join_member(ms[r], s);
  }
  auto shared = std::make_shared<std::vector<detail::Member>>(ms);
  for (std::size_t r = 0; r < members.size(); ++r)
    rt.monitor(members[r], [shared, r, base](const DownEvent& e) {
      detail::abort_members(*shared, r, base,
                            fmt::format("rank {} ({}) died: {}", r, shared->at(r).name.empty() ? fmt::format("actor {}", e.id) : shared->at(r).name,
                                        e.detail.empty() ? to_string(e.cause) : e.detail));
    });
  return GroupInfo{base.name, base.backend, base.uid, base.world};
}

template <class T>
GroupInfo create_group(Runtime& rt, const Mesh<T>& mesh, const GroupOptions& o = {}) {
  return create_group(rt, mesh.members(), o);
}

}  // namespace troupe::coll
