#pragma once
// Making a collective group from the driver, out of actors (a mesh or a list,
// ranks in order), as ray.util.collective.create_collective_group does:
//
//   auto info = troupe::coll::create_group(rt, replicas, {.name = "dp"});
//
// or from inside the actors, each with its rank, as init_collective_group does:
//
//   auto g = co_await troupe::coll::init_group(world, rank, {.name = "dp"});
//
// Each member learns its rank in order with the calls sent to it (a call sent
// after create_group finds the group there). The driver watches the members:
// when one dies, every other member's group is aborted at once, so pending
// and later operations fail naming the dead rank; rebuild with a new
// create_group of the survivors (or restarted members) under the same name.
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "runtime/coll/group.hpp"
#include "runtime/mesh.hpp"
#include "runtime/runtime.hpp"

namespace troupe::coll {

struct GroupOptions {
  std::string name = "default";
  /// Host buffers: automatic (shm on one host, else tcp), shm or tcp.
  /// Device buffers: automatic (nccl when every rank has its own GPU,
  /// cuda_local when all share one), nccl or cuda_local.
  BackendKind backend = BackendKind::automatic;
  Memory memory = Memory::host;   ///< where the buffers live
  std::vector<int> devices;       ///< cuda: the device of each in-process member by rank (default 0);
                                  ///< process members use the GPU their worker was given
  std::uint64_t staging_bytes = 4ull << 20;
  std::uint64_t p2p_bytes = 4ull << 20;
  std::uint64_t heap_bytes = 1ull << 30;  ///< room for alloc() buffers (touched lazily)
  std::uint32_t timeout_ms = 120000;      ///< longest wait on a peer before failing
  TROUPE_FIELDS(name, backend, memory, devices, staging_bytes, p2p_bytes, heap_bytes, timeout_ms)
};

struct GroupInfo {
  std::string name;
  BackendKind backend = BackendKind::automatic;  ///< the one the group formed with (never automatic)
  std::uint64_t uid = 0;
  std::uint32_t world = 0;
};

namespace detail {
/// Where a member runs, and how to reach it to join or abort.
struct Member {
  std::uint64_t id = 0;                          ///< actor id (local cells)
  std::weak_ptr<troupe::detail::ProcessActor> remote;  ///< process actors
  bool process = false;                          ///< a process actor (`remote` may have expired since)
  std::uint64_t node = 0;
  std::string name;
  int device = 0;  ///< cuda groups: the GPU it uses on its node
  std::function<void(MonitorFn)> watch;  ///< init_group: how to monitor it (create_group uses its ActorRef)
};
/// What a member asks for with init_group (sent by a worker to its driver).
struct JoinRequest {
  GroupOptions options;
  std::uint32_t world = 0, rank = 0;
  TROUPE_FIELDS(options, world, rank)
};
/// Driver side of init_group: member `m` asks to be rank q.rank; once every
/// rank has, the group is formed (form_group) and monitored. A disagreeing
/// or late round fails its members (abort_member with uid 0 / abortGroup).
void join_request(Runtime& rt, const JoinRequest& q, Member m);
/// Checks the options, picks the backend and makes every member join as its
/// rank (the part of create_group that needs no ActorRef).
GroupSpec form_group(Runtime& rt, const std::vector<Member>& ms, const GroupOptions& o);
/// A monitor that aborts the other members' group when rank r dies (and
/// tells the cluster head through `rt`, if given: `troupe groups`).
MonitorFn on_member_down(std::shared_ptr<std::vector<Member>> ms, std::size_t r, GroupSpec base, Runtime* rt = nullptr);
void join_member(const Member& m, const GroupSpec& spec);
void abort_members(const std::vector<Member>& ms, std::size_t dead, const GroupSpec& spec, const std::string& why);
std::uint64_t fresh_uid();
/// Host groups: shm (one host) or tcp, or UsageError.
BackendKind check_backend(Runtime& rt, const std::vector<Member>& ms, BackendKind backend);
/// Device groups: nccl (a GPU per rank) or cuda_local (one GPU for all), or UsageError.
BackendKind check_device_backend(Runtime& rt, const std::vector<Member>& ms, BackendKind backend);
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
    if (!a.alive()) {
      const auto why = a.death();
      throw UsageError(fmt::format("create_group: member {} is dead{}", a.id(), why.empty() ? "" : " (" + why + ")"));
    }
    detail::Member m;
    m.id = a.id();
    m.name = a.name();
    if (a.remote()) {
      m.process = true;
      m.remote = a.remote()->weak_handle();
      m.node = a.remote()->node();
      const auto devs = a.remote()->devices();
      m.device = devs.empty() ? 0 : static_cast<int>(devs.front());
    } else if (o.memory == Memory::cuda) {
      const auto r = ms.size();
      if (!o.devices.empty() && o.devices.size() != members.size())
        throw UsageError(fmt::format("create_group: {} devices given for {} members", o.devices.size(), members.size()));
      m.device = o.devices.empty() ? 0 : o.devices[r];
    }
    ms.push_back(std::move(m));
  }
  const GroupSpec base = detail::form_group(rt, ms, o);
  auto shared = std::make_shared<std::vector<detail::Member>>(ms);
  for (std::size_t r = 0; r < members.size(); ++r) rt.monitor(members[r], detail::on_member_down(shared, r, base, &rt));
  return GroupInfo{base.name, base.backend, base.uid, base.world};
}

template <class T>
GroupInfo create_group(Runtime& rt, const Mesh<T>& mesh, const GroupOptions& o = {}) {
  return create_group(rt, mesh.members(), o);
}

/// A group for every line of `mesh` along dimension `dim` (Mesh::lines), all
/// named o.name: each member is in exactly one and finds it as
/// coll::group(o.name). With mesh.reshape({{"dp", 2}, {"pp", 2}, {"tp", 2}}),
/// create_groups(rt, mesh, "tp", {.name = "tp"}) makes the four tensor-
/// parallel groups and create_groups(rt, mesh, "dp", {.name = "dp"}) the four
/// data-parallel ones, with no rank lists written by hand. o.devices, if
/// given, is per line. Returns the lines' groups in Mesh::lines order.
template <class T>
std::vector<GroupInfo> create_groups(Runtime& rt, const Mesh<T>& mesh, std::string_view dim, const GroupOptions& o = {}) {
  std::vector<GroupInfo> out;
  for (const auto& line : mesh.lines(dim)) out.push_back(create_group(rt, line.members(), o));
  return out;
}

/// Inside a member actor: forms the group o.name with the other actors that
/// call this, as ray.util.collective.init_collective_group does. Every member
/// calls it with the same world size and options and its own rank (process
/// members' requests go to their driver, which forms the group as
/// create_group would). The Ref gives the group (coll::group(o.name) finds it
/// too) once all `world` ranks have joined; it fails with CollectiveError if
/// they have not within o.timeout_ms (naming the missing ranks), at once if a
/// member asks for another world size or other options, or if its rank is
/// taken by another actor. Calling it again forms a new group under the name
/// (how survivors and restarted members rebuild one).
Ref<std::shared_ptr<Group>> init_group(std::uint32_t world, std::uint32_t rank, const GroupOptions& o = {});

}  // namespace troupe::coll
