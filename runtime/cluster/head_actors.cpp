// The head's actor side: placement of actors and placement groups, resource
// accounting, worker exits, and the actor directory (see head.hpp).
#include <fmt/format.h>

#include "runtime/cluster/head.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::cluster {

namespace {
// How the driver should raise a refusal: by the type of the exception.
proto::ErrorKind kind_of(const std::exception& e) {
  if (dynamic_cast<const Infeasible*>(&e)) return proto::ErrorKind::INFEASIBLE;
  if (dynamic_cast<const UsageError*>(&e)) return proto::ErrorKind::USAGE;
  return proto::ErrorKind::ERROR;
}

constexpr int kPending = static_cast<int>(proto::ActorState::PENDING);
constexpr int kRestarting = static_cast<int>(proto::ActorState::RESTARTING);
constexpr int kDead = static_cast<int>(proto::ActorState::DEAD);
}  // namespace

std::vector<Slot> Head::node_slots() const {
  std::vector<Slot> out;
  for (const auto& [id, n] : nodes_) out.push_back(n.slot);
  return out;
}

void Head::place_actor(const std::shared_ptr<Session>& s, proto::PlaceActor::Reader r) {
  const std::uint64_t request = r.getRequestId();
  auto refuse = [&](const std::string& why, proto::ErrorKind kind) {
    s->conn->send(net::envelope([&](proto::Envelope::Builder e) {
      auto p = e.initPlaceReply();
      p.setRequestId(request);
      p.setOk(false);
      p.setError(why);
      p.setErrorKind(kind);
    }));
  };
  ResourceMap req = from_proto(r.getResources());
  const std::string what = r.getName().size() ? fmt::format("actor '{}' ({})", r.getName().cStr(), r.getClassName().cStr())
                                              : std::string(r.getClassName().cStr());
  ActorRecord* existing = nullptr;
  if (r.getActorId()) {
    auto it = actors_.find(r.getActorId());
    if (it == actors_.end() || it->second.owner.lock() != s) return refuse("restart of an actor this driver does not own", proto::ErrorKind::USAGE);
    existing = &it->second;
    release(*existing);
  }
  Grant grant;
  int bundle = -1;
  std::uint64_t node = 0;
  try {
    if (r.getPlacementGroup()) {
      auto g = groups_.find(r.getPlacementGroup());
      if (g == groups_.end())
        throw Infeasible(fmt::format("{}: placement group {} does not exist (removed?)", what, r.getPlacementGroup()));
      auto& group = g->second;
      const int want = r.getBundle();
      if (want >= static_cast<int>(group.bundles.size()))
        throw UsageError(fmt::format("{}: placement group {} has {} bundle(s), no bundle {}", what, group.id,
                                     group.bundles.size(), want));
      std::vector<Slot> pool;
      if (want >= 0) {
        pool.push_back(group.bundles[static_cast<std::size_t>(want)]);
      } else {
        pool = group.bundles;
      }
      std::size_t i = choose(pool, req, r.getDevice(), 0, fmt::format("{} in placement group {}", what, group.id));
      bundle = want >= 0 ? want : static_cast<int>(i);
      grant = take(group.bundles[static_cast<std::size_t>(bundle)], req, r.getDevice());
      node = group.bundles[static_cast<std::size_t>(bundle)].node;
    } else {
      auto slots = node_slots();
      std::size_t i = choose(slots, req, r.getDevice(), r.getRequesterNode(), what);
      node = slots[i].node;
      grant = take(nodes_.at(node).slot, req, r.getDevice());
    }
  } catch (const std::exception& e) {
    if (existing) {
      if (existing->state != kDead) dead_actors_.push_back(existing->id);
      existing->state = kDead;
      existing->death_cause = fmt::format("restart failed: {}", e.what());
    }
    if (dynamic_cast<const Infeasible*>(&e)) note_refusal(what, e.what());
    return refuse(e.what(), kind_of(e));
  }
  if (!existing) {
    ActorRecord rec;
    // The driver's own id for the actor when no other actor has it, so the
    // driver's messages and `troupe actors` name it alike; next_actor_ stays
    // above every id in use.
    const std::uint64_t proposed = r.getProposedId();
    rec.id = proposed != 0 && !actors_.contains(proposed) ? proposed : std::max(next_actor_, proposed + 1);
    next_actor_ = std::max(next_actor_, rec.id + 1);
    rec.class_name = r.getClassName().cStr();
    rec.name = r.getName().cStr();
    rec.max_restarts = r.getMaxRestarts();
    rec.resources = req;
    rec.group = r.getPlacementGroup();
    rec.owner = s;
    rec.owner_label = s->conn->peer();
    existing = &actors_.emplace(rec.id, std::move(rec)).first->second;
  }  // a restart: its owner has reported the new restart count already
  ActorRecord& a = *existing;
  a.state = kPending;
  a.node = node;
  a.pid = 0;
  a.bundle = bundle;
  a.grant = grant;
  a.granted = true;
  const bool local = r.getRequesterNode() != 0 && node == r.getRequesterNode();
  s->conn->send(net::envelope([&](proto::Envelope::Builder e) {
    auto p = e.initPlaceReply();
    p.setRequestId(request);
    p.setOk(true);
    p.setActorId(a.id);
    p.setNodeId(node);
    p.setLocal(local);
    auto d = p.initDevices(static_cast<unsigned>(grant.devices.size()));
    for (unsigned i = 0; i < grant.devices.size(); ++i) d.set(i, grant.devices[i]);
  }));
  if (local) return;
  WorkerSpec spec;
  spec.actor_id = a.id;
  spec.exe = r.getExe().cStr();
  spec.driver_address = r.getDriverAddress().cStr();
  spec.devices = grant.devices;
  spec.mask_devices = r.getMaskDevices();
  auto& n = nodes_.at(node);
  if (n.is_head) {
    if (!local_launcher_) {
      WorkerExitInfo info{a.id, 0, false, 0, 0, fmt::format("{} cannot start workers for other processes", n.slot.label)};
      return worker_exit(std::move(info), false, nullptr);
    }
    try {
      auto pid = local_launcher_->launch(spec);
      worker_started(a.id, static_cast<std::uint32_t>(pid));
    } catch (const std::exception& e) {
      WorkerExitInfo info{a.id, 0, false, 0, 0, fmt::format("{}: {}", n.slot.label, e.what())};
      worker_exit(std::move(info), false, nullptr);
    }
    return;
  }
  n.conn->send(net::envelope([&](proto::Envelope::Builder e) { to_proto(spec, e.initStartWorker()); }));
}

void Head::worker_started(std::uint64_t actor, std::uint32_t pid) {
  auto it = actors_.find(actor);
  if (it == actors_.end() || it->second.state == kDead) return;
  it->second.pid = pid;
}

void Head::release(ActorRecord& a) {
  if (!a.granted) return;
  a.granted = false;
  if (a.group) {
    auto g = groups_.find(a.group);
    if (g != groups_.end() && a.bundle >= 0 && static_cast<std::size_t>(a.bundle) < g->second.bundles.size())
      give_back(g->second.bundles[static_cast<std::size_t>(a.bundle)], a.grant);
    return;
  }
  auto n = nodes_.find(a.node);
  if (n != nodes_.end()) give_back(n->second.slot, a.grant);
}

void Head::worker_exit(WorkerExitInfo info, bool node_died, const Session* from) {
  auto it = actors_.find(info.actor_id);
  if (it == actors_.end()) return;
  auto& a = it->second;
  if (a.state == kDead) return;
  release(a);
  // A worker that exits with code 0 was stopped (its actor's stop, or its
  // driver leaving): not a failure, and nothing restarts it.
  const bool clean = info.started && info.signal == 0 && info.code == 0 && !node_died;
  const bool more = !clean && (a.max_restarts < 0 || static_cast<int>(a.restarts) < a.max_restarts);
  a.state = more ? kRestarting : kDead;
  a.death_cause = info.detail;
  a.pid = 0;
  a.load = {};
  if (!clean)
    note_failure(false,
                 fmt::format("actor {} ({}{}){}", a.id, a.class_name, a.name.empty() ? "" : " '" + a.name + "'",
                             more ? ", restarting" : ""),
                 info.detail);
  if (!more) dead_actors_.push_back(a.id);  // forgotten later (callers iterate actors_)
  auto owner = a.owner.lock();
  if (!owner || owner.get() == from) return;
  owner->conn->send(net::envelope([&](proto::Envelope::Builder e) {
    auto w = e.initWorkerExit();
    to_proto(info, w);
    w.setNodeDied(node_died);
  }));
}

void Head::kill_worker(const ActorRecord& a) {
  if (a.state == kDead) return;
  auto n = nodes_.find(a.node);
  if (n == nodes_.end() || !n->second.slot.alive) return;
  if (n->second.is_head) {
    if (local_launcher_) local_launcher_->kill(a.id);
    return;
  }
  if (n->second.conn) n->second.conn->send(net::envelope([&](proto::Envelope::Builder e) { e.setKillWorker(a.id); }));
}

void Head::create_group(const std::shared_ptr<Session>& s, proto::CreatePlacementGroup::Reader r) {
  const std::uint64_t request = r.getRequestId();
  std::vector<ResourceMap> bundles;
  for (auto b : r.getBundles()) bundles.push_back(from_proto(b.getResources()));
  Strategy strategy = Strategy::pack;
  switch (r.getStrategy()) {
    case proto::PlacementStrategy::PACK: strategy = Strategy::pack; break;
    case proto::PlacementStrategy::SPREAD: strategy = Strategy::spread; break;
    case proto::PlacementStrategy::STRICT_PACK: strategy = Strategy::strict_pack; break;
    case proto::PlacementStrategy::STRICT_SPREAD: strategy = Strategy::strict_spread; break;
  }
  GroupRecord g;
  try {
    auto slots = node_slots();
    auto where = place_bundles(slots, bundles, strategy);
    g.id = next_group_++;
    g.name = r.getName().cStr();
    g.strategy = strategy;
    g.owner = s;
    for (std::size_t b = 0; b < bundles.size(); ++b) {
      auto& node = nodes_.at(slots[where[b]].node);
      Grant grant = take(node.slot, bundles[b], -1);
      --node.slot.actors;  // a reservation, not an actor
      Slot bs;
      bs.node = node.slot.node;
      bs.label = fmt::format("bundle {} of placement group {} on {}", b, g.id, node.slot.label);
      bs.total = bundles[b];
      bs.gpu_ids = grant.devices;
      bs.gpu_used.assign(grant.devices.size(), 1.0 - grant.gpu_share);
      g.bundles.push_back(std::move(bs));
      g.grants.push_back(std::move(grant));
    }
  } catch (const std::exception& e) {
    if (dynamic_cast<const Infeasible*>(&e))
      note_refusal(fmt::format("placement group '{}' ({} bundles)", r.getName().cStr(), bundles.size()),
                   e.what());
    s->conn->send(net::envelope([&](proto::Envelope::Builder env) {
      auto p = env.initPlacementGroupReply();
      p.setRequestId(request);
      p.setOk(false);
      p.setError(e.what());
      p.setErrorKind(kind_of(e));
    }));
    return;
  }
  s->conn->send(net::envelope([&](proto::Envelope::Builder env) {
    auto p = env.initPlacementGroupReply();
    p.setRequestId(request);
    p.setOk(true);
    p.setGroupId(g.id);
    auto nodes = p.initBundleNodes(static_cast<unsigned>(g.bundles.size()));
    for (unsigned i = 0; i < g.bundles.size(); ++i) nodes.set(i, g.bundles[i].node);
  }));
  groups_.emplace(g.id, std::move(g));
}

void Head::remove_group(std::uint64_t id, const std::string& why) {
  auto it = groups_.find(id);
  if (it == groups_.end()) return;
  for (auto& [aid, a] : actors_) {
    if (a.group != id || a.state == kDead) continue;
    kill_worker(a);
    release(a);
    a.state = kDead;
    a.death_cause = why;
    dead_actors_.push_back(aid);
    if (auto owner = a.owner.lock())
      owner->conn->send(net::envelope([&](proto::Envelope::Builder e) {
        auto w = e.initWorkerExit();
        to_proto(WorkerExitInfo{aid, static_cast<pid_t>(a.pid), true, 0, 0, why}, w);
        w.setFinal(true);
      }));
  }
  for (std::size_t b = 0; b < it->second.bundles.size(); ++b) {
    auto n = nodes_.find(it->second.bundles[b].node);
    if (n == nodes_.end()) continue;
    ++n->second.slot.actors;  // give_back counts one off
    give_back(n->second.slot, it->second.grants[b]);
  }
  groups_.erase(it);
}

kj::Array<capnp::word> Head::actors_frame() const {
  return net::envelope([&](proto::Envelope::Builder e) {
    auto list = e.initActorList().initActors(static_cast<unsigned>(actors_.size()));
    unsigned i = 0;
    for (const auto& [id, a] : actors_) {
      auto b = list[i++];
      b.setId(id);
      b.setClassName(a.class_name);
      b.setName(a.name);
      b.setState(static_cast<proto::ActorState>(a.state));
      b.setNodeId(a.node);
      b.setPid(a.pid);
      b.setRestarts(a.restarts);
      b.setDeathCause(a.death_cause);
      to_proto(a.resources, b.initResources(static_cast<unsigned>(a.resources.size())));
      b.setPlacementGroup(a.group);
      b.setOwner(a.owner_label);
      b.setRssBytes(a.load.rss);
      b.setCpuUtil(a.load.cpu);
      b.setGpuMemBytes(a.load.gpu_mem);
      b.setCallsTotal(a.counters.calls);
      b.setCallsPerS(a.calls_per_s);
      b.setQueueDepth(a.counters.depth);
      b.setP99S(a.p99_s);
    }
  });
}

}  // namespace troupe::cluster
