#include "runtime/coll/create.hpp"

#include <map>

#include "runtime/coll/gpu.hpp"

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

std::string driver_host(Runtime& rt) {
  const std::string a = rt.cluster().driver_address();
  return a.substr(0, a.rfind(':'));
}

std::string check_backend(Runtime& rt, const std::vector<Member>& ms, const std::string& backend) {
  if (backend != "auto" && backend != "shm" && backend != "tcp")
    throw UsageError(fmt::format("create_group: backend '{}' is not available (shm: ranks on one host; tcp: any)",
                                 backend));
  if (backend == "tcp") return backend;
  // Shared memory needs every rank on one host: process members on one node,
  // and in-process members only beside process members on the driver's node.
  std::uint64_t node = 0;
  bool any_local = false, one_host = true;
  std::string where;
  for (const auto& m : ms) {
    if (m.remote.expired()) {
      any_local = true;
      continue;
    }
    if (node == 0) node = m.node;
    if (m.node != node) {
      one_host = false;
      where = fmt::format("nodes {} and {}", node, m.node);
    }
  }
  if (one_host && any_local && node != 0 && node != rt.cluster().local_node()) {
    one_host = false;
    where = fmt::format("the driver and node {}", node);
  }
  if (one_host) return "shm";
  if (backend == "shm")
    throw UsageError(fmt::format("create_group: members run on {}; the shared-memory backend needs one host", where));
  return "tcp";
}

std::string check_device_backend(Runtime& rt, const std::vector<Member>& ms, const std::string& backend) {
  if (backend != "auto" && backend != "nccl" && backend != "cuda_local")
    throw UsageError(fmt::format("create_group: backend '{}' does not take device buffers (nccl or cuda_local)", backend));
  if (!gpu::built())
    throw UsageError("create_group: device buffers need a CUDA build of troupe (this one is CPU-only)");
  // Where each rank's GPU is: (node, device). In-process members are on the driver's node.
  auto where = [&](const Member& m) {
    return std::pair{m.remote.expired() ? rt.cluster().local_node() : m.node, m.device};
  };
  std::map<std::pair<std::uint64_t, int>, std::size_t> first;
  std::string shared;
  for (std::size_t r = 0; r < ms.size(); ++r) {
    auto [it, fresh] = first.emplace(where(ms[r]), r);
    if (!fresh && shared.empty())
      shared = fmt::format("ranks {} and {} share GPU {} of node {}", it->second, r, where(ms[r]).second,
                           where(ms[r]).first);
  }
  const bool one_gpu = first.size() == 1, own_gpus = first.size() == ms.size();
  if (backend == "nccl" && !own_gpus)
    throw UsageError(fmt::format("create_group: nccl needs one GPU per rank, but {} (cuda_local runs ranks that share "
                                 "one GPU)", shared));
  if (backend == "cuda_local" && !one_gpu)
    throw UsageError(fmt::format("create_group: cuda_local needs every rank on one GPU, but ranks use {} GPUs",
                                 first.size()));
  if (backend != "auto") return backend;
  if (own_gpus) return "nccl";
  if (one_gpu) return "cuda_local";
  throw UsageError(fmt::format("create_group: {}, but others have their own: NCCL needs one GPU per rank and "
                               "cuda_local one GPU for all", shared));
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
