#include "runtime/coll/create.hpp"

#include "runtime/net/auth.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/remote/remote_actor.hpp"

namespace troupe::coll::detail {

std::uint64_t fresh_uid() {
  auto b = net::random_bytes(8);
  std::uint64_t v = 0;
  for (auto x : b) v = (v << 8) | x;
  return v ? v : 1;
}

std::string check_backend(Runtime& rt, const std::vector<Member>& ms, const std::string& backend) {
  if (backend != "auto" && backend != "shm")
    throw UsageError(fmt::format("create_group: backend '{}' is not available (built: shm for ranks on one host)",
                                 backend));
  // Shared memory needs every rank on one host: process members on one node,
  // and in-process members only beside process members on the driver's node.
  std::uint64_t node = 0;
  bool any_local = false;
  for (const auto& m : ms) {
    if (m.remote.expired()) {
      any_local = true;
      continue;
    }
    if (node == 0) node = m.node;
    if (m.node != node)
      throw UsageError(fmt::format(
          "create_group: members run on nodes {} and {}; the shared-memory backend needs one host (a TCP backend "
          "across hosts is not built yet)",
          node, m.node));
  }
  if (any_local && node != 0 && node != rt.cluster().local_node())
    throw UsageError(fmt::format("create_group: some members run in the driver and others on node {}; the "
                                 "shared-memory backend needs one host",
                                 node));
  return "shm";
}

void join_member(const Member& m, const GroupSpec& spec) {
  if (auto r = m.remote.lock()) {
    Bytes b = codec::to_bytes(spec);
    r->control(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
      e.setJoinGroup(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(b.data()), b.size()));
    }));
    return;
  }
  declare(m.id, spec);
}

void abort_members(const std::vector<Member>& ms, std::size_t dead, const GroupSpec& spec, const std::string& why) {
  for (std::size_t i = 0; i < ms.size(); ++i) {
    if (i == dead) continue;
    if (auto r = ms[i].remote.lock()) {
      r->control(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
        auto a = e.initAbortGroup();
        a.setName(spec.name);
        a.setUid(spec.uid);
        a.setWhy(why);
      }));
    } else if (ms[i].remote.expired()) {
      abort_member(ms[i].id, spec.name, spec.uid, why);
    }
  }
}

}  // namespace troupe::coll::detail
