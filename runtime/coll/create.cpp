#include "runtime/coll/create.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <optional>
#include <thread>

#include "runtime/coll/detail/gpu.hpp"

#include "runtime/net/auth.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/cluster/client.hpp"
#include "runtime/codec/capnp.hpp"
#include "runtime/remote/extension.hpp"
#include "runtime/remote/remote_actor.hpp"
#include "runtime/remote/worker_link.hpp"

namespace troupe::coll::detail {

// Group membership travels on a process member's own link, in order with its calls.
void control(const Member& m, kj::Array<capnp::word> frame) {
  if (auto r = std::dynamic_pointer_cast<remote::RemoteActor>(m.remote.lock())) r->control(std::move(frame));
}

std::uint64_t fresh_uid() {
  auto b = net::random_bytes(8);
  std::uint64_t v = 0;
  for (auto x : b) v = (v << 8) | x;
  return v ? v : 1;
}

std::string driver_host(Runtime& rt) {
  const std::string a = remote::cluster_of(rt).driver_address();
  return a.substr(0, a.rfind(':'));
}

namespace {
bool any_process(const std::vector<Member>& ms) {
  return std::any_of(ms.begin(), ms.end(), [](const Member& m) { return m.process; });
}
// The driver's node: where its in-process members run. A group of in-process
// members only needs no cluster (0 stands for this process).
std::uint64_t driver_node(Runtime& rt, const std::vector<Member>& ms) {
  return any_process(ms) ? remote::cluster_of(rt).local_node() : 0;
}
}  // namespace

BackendKind check_backend(Runtime& rt, const std::vector<Member>& ms, BackendKind backend) {
  if (backend != BackendKind::automatic && backend != BackendKind::shm && backend != BackendKind::tcp)
    throw UsageError(fmt::format("create_group: backend '{}' is not available (shm: ranks on one host; tcp: any)",
                                 backend));
  if (backend == BackendKind::tcp) return backend;
  // Shared memory needs every rank on one host: process members on one node,
  // and in-process members only beside process members on the driver's node.
  std::uint64_t node = 0;
  bool any_local = false, one_host = true;
  std::string where;
  for (const auto& m : ms) {
    if (!m.process) {
      any_local = true;
      continue;
    }
    if (node == 0) node = m.node;
    if (m.node != node) {
      one_host = false;
      where = fmt::format("nodes {} and {}", node, m.node);
    }
  }
  if (one_host && any_local && node != 0 && node != driver_node(rt, ms)) {
    one_host = false;
    where = fmt::format("the driver and node {}", node);
  }
  if (one_host) return BackendKind::shm;
  if (backend == BackendKind::shm)
    throw UsageError(fmt::format("create_group: members run on {}; the shared-memory backend needs one host", where));
  return BackendKind::tcp;
}

BackendKind check_device_backend(Runtime& rt, const std::vector<Member>& ms, BackendKind backend) {
  if (backend != BackendKind::automatic && backend != BackendKind::nccl && backend != BackendKind::cuda_local)
    throw UsageError(fmt::format("create_group: backend '{}' does not take device buffers (nccl or cuda_local)", backend));
  if (!gpu::built())
    throw UsageError("create_group: device buffers need a CUDA build of troupe (this one is CPU-only)");
  // Where each rank's GPU is: (node, device). In-process members are on the driver's node.
  const std::uint64_t here = driver_node(rt, ms);
  auto where = [&](const Member& m) { return std::pair{m.process ? m.node : here, m.device}; };
  std::map<std::pair<std::uint64_t, int>, std::size_t> first;
  std::string shared;
  for (std::size_t r = 0; r < ms.size(); ++r) {
    auto [it, fresh] = first.emplace(where(ms[r]), r);
    if (!fresh && shared.empty())
      shared = fmt::format("ranks {} and {} share GPU {} of node {}", it->second, r, where(ms[r]).second,
                           where(ms[r]).first);
  }
  const bool one_gpu = first.size() == 1, own_gpus = first.size() == ms.size();
  if (backend == BackendKind::nccl && !own_gpus)
    throw UsageError(fmt::format("create_group: nccl needs one GPU per rank, but {} (cuda_local runs ranks that share "
                                 "one GPU)", shared));
  if (backend == BackendKind::cuda_local && !one_gpu)
    throw UsageError(fmt::format("create_group: cuda_local needs every rank on one GPU, but ranks use {} GPUs",
                                 first.size()));
  if (backend != BackendKind::automatic) return backend;
  if (own_gpus) return BackendKind::nccl;
  if (one_gpu) return BackendKind::cuda_local;
  throw UsageError(fmt::format("create_group: {}, but others have their own: NCCL needs one GPU per rank and "
                               "cuda_local one GPU for all", shared));
}

void join_member(const Member& m, const GroupSpec& spec) {
  if (m.process) {
    // A member that is gone is skipped: its monitor (or the others' wait to join) fails the group.
    Bytes b = codec::to_bytes(spec);
    control(m, net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
      e.setJoinGroup(codec::data_of(b));
    }));
    return;
  }
  declare(m.id, spec);
}

void abort_members(const std::vector<Member>& ms, std::size_t dead, const GroupSpec& spec, const std::string& why) {
  for (std::size_t i = 0; i < ms.size(); ++i) {
    if (i == dead) continue;
    if (ms[i].process) {
      control(ms[i], net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
        auto a = e.initAbortGroup();
        a.setName(spec.name);
        a.setUid(spec.uid);
        a.setWhy(why);
      }));
    } else {
      abort_member(ms[i].id, spec.name, spec.uid, why);
    }
  }
}

namespace {
telemetry::GroupStatus status_of(const GroupSpec& base, const std::vector<Member>& ms, std::string state,
                                 std::string detail) {
  telemetry::GroupStatus g;
  g.name = base.name;
  g.uid = base.uid;
  g.backend = std::string(to_string(base.backend));
  for (const auto& m : ms) g.members.push_back(m.process ? m.id : 0);
  g.state = std::move(state);
  g.detail = std::move(detail);
  return g;
}
}  // namespace

GroupSpec form_group(Runtime& rt, const std::vector<Member>& ms, const GroupOptions& o) {
  GroupSpec base;
  base.name = o.name;
  base.uid = fresh_uid();
  base.world = static_cast<std::uint32_t>(ms.size());
  base.memory = o.memory;
  base.backend =
      o.memory == Memory::cuda ? check_device_backend(rt, ms, o.backend) : check_backend(rt, ms, o.backend);
  base.staging_bytes = o.staging_bytes;
  base.p2p_bytes = o.p2p_bytes;
  base.heap_bytes = o.heap_bytes;
  base.timeout_ms = o.timeout_ms;
  // In-process members reach each other (tcp) on loopback; process members
  // dial the driver's address, as their workers do.
  const std::string host = any_process(ms) ? driver_host(rt) : "127.0.0.1";
  for (std::size_t r = 0; r < ms.size(); ++r) {
    GroupSpec s = base;
    s.rank = static_cast<std::uint32_t>(r);
    s.host = host;  // a worker that dialled in from another host uses its own address
    if (o.memory == Memory::cuda) s.device = ms[r].process ? -1 : ms[r].device;  // a worker knows its own
    join_member(ms[r], s);
  }
  rt.report_group(status_of(base, ms, "ready", ""));
  return base;
}

MonitorFn on_member_down(std::shared_ptr<std::vector<Member>> ms, std::size_t r, GroupSpec base, Runtime* rt) {
  return [ms = std::move(ms), r, base = std::move(base), rt](const DownEvent& e) {
    const auto& who = ms->at(r).name;
    const std::string why = fmt::format("rank {} ({}) died: {}", r, who.empty() ? fmt::format("actor {}", e.id) : who,
                                        e.detail.empty() ? to_string(e.cause) : e.detail);
    abort_members(*ms, r, base, why);
    if (rt) rt->report_group(status_of(base, *ms, "aborted", why));
  };
}

namespace {

// init_group rounds being formed, by group name.
struct Round {
  JoinRequest first;  // the first joiner's request: world and options every later one must match
  std::vector<std::optional<Member>> members;
  std::size_t joined = 0;
  std::uint64_t gen = 0;
};
std::mutex rounds_mu;
std::condition_variable rounds_cv;
std::uint64_t rounds_gen = 0;
std::map<std::string, Round>& rounds() {
  static auto* m = new std::map<std::string, Round>();
  return *m;
}

void fail_joiner(const Member& m, const std::string& name, const std::string& why) {
  if (m.process) {
    control(m, net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
      auto a = e.initAbortGroup();
      a.setName(name);
      a.setUid(0);  // not a group yet: its init_group fails
      a.setWhy(why);
    }));
  } else {
    abort_member(m.id, name, 0, why);
  }
}

// The first option two requests for one group differ in: its name and each
// request's value (an empty name if they agree).
struct Difference {
  std::string key, a, b;
};
Difference differs(const JoinRequest& qa, const JoinRequest& qb) {
  const GroupOptions &a = qa.options, &b = qb.options;
  auto devs = [](const std::vector<int>& d) { return fmt::format("[{}]", fmt::join(d, ", ")); };
  auto str = [](auto v) { return fmt::format("'{}'", v); };
  if (qa.world != qb.world) return {"world", std::to_string(qa.world), std::to_string(qb.world)};
  if (a.backend != b.backend) return {"backend", str(a.backend), str(b.backend)};
  if (a.memory != b.memory) return {"memory", str(a.memory), str(b.memory)};
  if (a.devices != b.devices) return {"devices", devs(a.devices), devs(b.devices)};
  if (a.staging_bytes != b.staging_bytes)
    return {"staging_bytes", std::to_string(a.staging_bytes), std::to_string(b.staging_bytes)};
  if (a.p2p_bytes != b.p2p_bytes) return {"p2p_bytes", std::to_string(a.p2p_bytes), std::to_string(b.p2p_bytes)};
  if (a.heap_bytes != b.heap_bytes) return {"heap_bytes", std::to_string(a.heap_bytes), std::to_string(b.heap_bytes)};
  if (a.timeout_ms != b.timeout_ms) return {"timeout_ms", std::to_string(a.timeout_ms), std::to_string(b.timeout_ms)};
  return {};
}

// Fails a round still short of members at its deadline, naming who is missing.
void expire_round(std::string name, std::uint64_t gen, std::chrono::milliseconds limit) {
  std::vector<Member> joined;
  std::string why;
  {
    std::unique_lock lock(rounds_mu);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    auto settled = [&]() {
      auto it = rounds().find(name);
      return it == rounds().end() || it->second.gen != gen;
    };
    if (rounds_cv.wait_until(lock, deadline, settled)) return;
    auto& r = rounds()[name];
    std::vector<std::size_t> missing;
    for (std::size_t i = 0; i < r.members.size(); ++i)
      if (r.members[i])
        joined.push_back(*r.members[i]);
      else
        missing.push_back(i);
    why = fmt::format("group '{}': rank{} {} of {} did not join within {} ms", name, missing.size() > 1 ? "s" : "",
                      fmt::join(missing, ", "), r.members.size(), limit.count());
    rounds().erase(name);
  }
  for (const auto& m : joined) fail_joiner(m, name, why);
}

}  // namespace

void join_request(Runtime& rt, const JoinRequest& q, Member m) {
  if (q.world == 0 || q.world > kMaxRanks || q.rank >= q.world)  // init_group checks; a worker's bytes may not
    return fail_joiner(m, q.options.name,
                       fmt::format("group '{}': rank {} of a group of {} (1 to {} ranks)", q.options.name, q.rank,
                                   q.world, kMaxRanks));
  std::vector<Member> failed, formed;
  std::string why;
  JoinRequest first;
  {
    std::lock_guard lock(rounds_mu);
    const std::string& name = q.options.name;
    auto [it, fresh] = rounds().try_emplace(name);
    Round& r = it->second;
    if (fresh) {
      r.first = q;
      r.members.resize(q.world);
      r.gen = ++rounds_gen;
      std::thread(expire_round, name, r.gen, std::chrono::milliseconds(q.options.timeout_ms)).detach();
    }
    if (auto d = differs(r.first, q); !d.key.empty()) {
      // Named the same way whoever came first: the lower rank first.
      auto lo = r.first.rank, hi = q.rank;
      if (lo > hi) std::swap(lo, hi), std::swap(d.a, d.b);
      why = fmt::format("group '{}': members disagree: rank {} asks for {} {}, rank {} for {} {}", name, lo, d.key,
                        d.a, hi, d.key, d.b);
      for (auto& j : r.members)
        if (j) failed.push_back(*j);
      failed.push_back(std::move(m));
      rounds().erase(it);
    } else if (r.members[q.rank] && r.members[q.rank]->id != m.id) {
      why = fmt::format("group '{}': rank {} is taken by {} (actor {} asks for it too)", name, q.rank,
                        r.members[q.rank]->name.empty() ? fmt::format("actor {}", r.members[q.rank]->id)
                                                        : r.members[q.rank]->name,
                        m.id);
      failed.push_back(std::move(m));
    } else {
      if (!r.members[q.rank]) ++r.joined;
      r.members[q.rank] = std::move(m);
      if (r.joined == r.members.size()) {
        for (auto& j : r.members) formed.push_back(std::move(*j));
        first = r.first;
        rounds().erase(it);
      }
    }
  }
  rounds_cv.notify_all();
  for (const auto& f : failed) fail_joiner(f, q.options.name, why);
  if (formed.empty()) return;
  const GroupOptions& o = first.options;
  try {
    const GroupSpec base = form_group(rt, formed, o);
    auto shared = std::make_shared<std::vector<Member>>(formed);
    for (std::size_t r = 0; r < formed.size(); ++r)
      if (formed[r].watch) formed[r].watch(on_member_down(shared, r, base, &rt));
  } catch (const std::exception& e) {
    for (const auto& f : formed) fail_joiner(f, o.name, e.what());
  }
}

}  // namespace troupe::coll::detail

namespace troupe::coll {

Ref<std::shared_ptr<Group>> init_group(std::uint32_t world, std::uint32_t rank, const GroupOptions& o) {
  auto* ctx = current_actor();
  if (!ctx) throw UsageError(fmt::format("init_group('{}') outside an actor", o.name));
  if (world == 0 || world > kMaxRanks)
    throw UsageError(fmt::format("init_group('{}'): world {} (1 to {} ranks)", o.name, world, kMaxRanks));
  if (rank >= world) throw UsageError(fmt::format("init_group('{}'): rank {} of a group of {}", o.name, rank, world));
  if (!o.devices.empty() && o.devices.size() != world)
    throw UsageError(fmt::format("init_group('{}'): {} devices given for {} ranks", o.name, o.devices.size(), world));
  const detail::JoinRequest q{o, world, rank};
  auto ref = detail::await_group(ctx->id(), o.name);
  auto& link = remote::worker_link();
  if (link.active) {
    // A process actor: its driver forms the group.
    Bytes b = codec::to_bytes(q);
    std::lock_guard lock(link.mu);
    link.conn->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
      e.setJoinRequest(codec::data_of(b));
    }));
    return ref;
  }
  detail::Member m;
  m.id = ctx->id();
  m.name = ctx->name();
  m.device = o.devices.empty() ? 0 : o.devices[rank];
  if (auto* cell = dynamic_cast<troupe::detail::CellBase*>(ctx)) {
    std::weak_ptr<troupe::detail::CellBase> weak = cell->weak_from_this();
    m.watch = [weak](MonitorFn fn) {
      if (auto c = weak.lock()) c->add_monitor(std::move(fn));
    };
  }
  detail::join_request(ctx->runtime(), q, std::move(m));
  return ref;
}

}  // namespace troupe::coll
