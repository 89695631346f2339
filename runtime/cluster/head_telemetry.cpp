// The head's watching side: recent failures and refusals, training jobs and
// collective groups that drivers report (with their counters), the nodes'
// load, `troupe stop`, and the status snapshot (see head.hpp; /metrics is in
// head_metrics.cpp, `troupe logs` in head_logs.cpp). All of it bounded:
// rings of events, capped tables, dead actors forgotten oldest first, so the
// head's memory stays flat however long the cluster runs.
#include <algorithm>

#include <fmt/format.h>

#include "runtime/cluster/head.hpp"
#include "runtime/cluster/telemetry_proto.hpp"
#include "runtime/codec/capnp.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::cluster {

using clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t kEvents = 64;        // recent failures kept
constexpr std::size_t kRefusals = 32;      // recent infeasible requests kept
constexpr std::size_t kJobs = 128;         // jobs kept (finished ones go first)
constexpr std::size_t kGroups = 1024;      // collective groups kept
constexpr std::size_t kDeadActors = 1000;  // dead actors kept in the directory
constexpr std::size_t kRanks = 4096;       // ranks kept per job report
constexpr std::size_t kText = 2000;        // longest text kept from a report
constexpr int kPending = static_cast<int>(proto::ActorState::PENDING);
constexpr int kDead = static_cast<int>(proto::ActorState::DEAD);

std::string clip(std::string s) {
  if (s.size() > kText) s.resize(kText);
  return s;
}

std::uint64_t ms_since(clock::time_point t, clock::time_point now) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count()));
}
}  // namespace

void Head::note_failure(bool node, std::string what, std::string cause) {
  ++(node ? node_failures_ : actor_failures_);
  events_.push_back({clock::now(), clip(std::move(what)), clip(std::move(cause))});
  if (events_.size() > kEvents) {
    events_.pop_front();
    ++events_dropped_;
  }
}

void Head::note_refusal(std::string what, std::string cause) {
  ++refusals_total_;
  refusals_.push_back({clock::now(), clip(std::move(what)), clip(std::move(cause))});
  if (refusals_.size() > kRefusals) refusals_.pop_front();
}

void Head::forget_dead_actors() {
  while (dead_actors_.size() > kDeadActors) {
    auto it = actors_.find(dead_actors_.front());
    dead_actors_.pop_front();
    if (it != actors_.end() && it->second.state == kDead) actors_.erase(it);
  }
}

void Head::on_reports(const std::shared_ptr<Session>& s, proto::JobReports::Reader r) {
  const auto now = clock::now();
  for (auto j : r.getJobs()) {
    auto status = job_from_proto(j);
    status.name = clip(std::move(status.name));
    status.detail = clip(std::move(status.detail));
    if (status.ranks.size() > kRanks) status.ranks.resize(kRanks);
    auto& rec = jobs_[{s->serial, status.id}];
    rec.stragglers.update(status.step, status.ranks);
    rec.status = std::move(status);
    rec.owner_label = s->conn->peer();
    rec.last = now;
  }
  while (jobs_.size() > kJobs) {  // the oldest finished job, else the oldest
    auto victim = jobs_.end();
    for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
      const bool done = it->second.status.state != "running";
      const bool vdone = victim != jobs_.end() && victim->second.status.state != "running";
      if (victim == jobs_.end() || (done && !vdone) || (done == vdone && it->second.last < victim->second.last))
        victim = it;
    }
    jobs_.erase(victim);
  }
  if (r.hasSamples()) {
    auto data = r.getSamples();
    try {
      auto sample = codec::from_bytes<telemetry::ProcessSample>(
          codec::bytes_of(data));
      // The worker's actor, under the id its driver knows it by (the
      // worker's own word for it is not taken); its groups, a bounded few.
      if (sample.actors.size() > 1) sample.actors.resize(1);
      for (auto& a : sample.actors) a.id = r.getSamplesActor();
      if (sample.groups.size() > 256) sample.groups.resize(256);
      on_samples(s, sample);
    } catch (const std::exception&) {
      // Undecodable counters are dropped; the driver's other reports stand.
    }
  }
  for (auto g : r.getGroups()) {
    auto status = group_from_proto(g);
    status.name = clip(std::move(status.name));
    status.detail = clip(std::move(status.detail));
    if (status.members.size() > kRanks) status.members.resize(kRanks);
    auto& rec = coll_groups_[{s->serial, status.name}];
    rec.status = std::move(status);
    rec.owner_label = s->conn->peer();
  }
  while (coll_groups_.size() > kGroups) {
    auto victim = coll_groups_.begin();
    for (auto it = coll_groups_.begin(); it != coll_groups_.end(); ++it)
      if (it->second.status.state != "ready") {
        victim = it;
        break;
      }
    coll_groups_.erase(victim);
  }
}

void Head::on_samples(const std::shared_ptr<Session>& s, const telemetry::ProcessSample& p) {
  const auto now = clock::now();
  for (const auto& a : p.actors) {
    auto it = actors_.find(a.id);
    if (it == actors_.end() || it->second.owner.lock() != s) continue;  // only its owner speaks for it
    auto& rec = it->second;
    const double dt = std::chrono::duration<double>(now - rec.counted).count();
    calls_total_ += a.calls >= rec.counters.calls ? a.calls - rec.counters.calls : a.calls;  // a restart starts at 0
    if (rec.counted != clock::time_point{} && dt > 0 && a.calls >= rec.counters.calls) {
      rec.calls_per_s = static_cast<double>(a.calls - rec.counters.calls) / dt;
      std::vector<std::uint64_t> delta(a.latency.size());
      for (std::size_t b = 0; b < a.latency.size(); ++b)
        delta[b] = b < rec.counters.latency.size() && a.latency[b] >= rec.counters.latency[b]
                       ? a.latency[b] - rec.counters.latency[b]
                       : a.latency[b];
      // An interval with no sampled call (1 in 8) keeps the last figure.
      if (const double q = telemetry::quantile_s(delta, 0.99); q > 0) rec.p99_s = q;
    }
    rec.counters = a;
    rec.counters.latency.resize(std::min<std::size_t>(rec.counters.latency.size(), telemetry::kLatencyBuckets));
    rec.counted = now;
  }
  for (const auto& g : p.groups) {
    auto it = coll_groups_.find({s->serial, g.name});
    if (it == coll_groups_.end() || it->second.status.uid != g.uid || g.rank >= it->second.status.members.size())
      continue;
    auto& r = it->second.ranks[g.rank];
    const double dt = std::chrono::duration<double>(now - r.at).count();
    if (r.at != clock::time_point{} && r.last.uid == g.uid && g.ops >= r.last.ops) {
      r.d_ops = static_cast<double>(g.ops - r.last.ops);
      r.d_bytes = static_cast<double>(g.bytes - std::min(g.bytes, r.last.bytes));
      r.d_busy = std::max(0.0, g.busy_s - r.last.busy_s);
      r.d_last = static_cast<double>(g.last - std::min(g.last, r.last.last));
      r.dt = dt;
    }
    r.last = g;
    r.at = now;
  }
}

void Head::owner_left(const Session& s) {
  for (auto& [key, job] : jobs_)
    if (key.first == s.serial && job.status.state == "running") {
      job.status.state = "failed";
      job.status.detail = "its driver exited before the job ended";
    }
  std::erase_if(coll_groups_, [&](const auto& kv) { return kv.first.first == s.serial; });
}

void Head::on_stop_cluster(const std::shared_ptr<Session>& s, const std::string& why) {
  std::size_t nodes = 0, workers = 0;
  for (auto& [id, n] : nodes_) {
    if (!n.slot.alive || n.is_head || !n.conn) continue;
    ++nodes;
    n.conn->send(net::envelope([&](proto::Envelope::Builder e) { e.setStopCluster(clip(why)); }));
    n.conn->finish();
  }
  for (auto& [id, a] : actors_)
    if (a.state != kDead && a.pid) ++workers;
  const std::string what = fmt::format("stopping the head at {}, {} node daemon(s) and {} worker(s)", address(),
                                       nodes, workers);
  fmt::print(stderr, "troupe-head: {} ({})\n", what, why);
  s->conn->send(net::envelope([&](proto::Envelope::Builder e) { e.setStopping(what); }));
  s->conn->finish();
  if (stop_requested_) return;
  stop_requested_ = true;
  if (on_stop_) on_stop_(why);
}

void Head::sample_own_node() {
  if (!local_node_ || !own_load_.due()) return;
  std::map<std::uint64_t, pid_t> workers;
  for (const auto& [id, a] : actors_)
    if (a.node == local_node_ && a.pid && a.state != kDead) workers[id] = static_cast<pid_t>(a.pid);
  take_load(local_node_, own_load_.sample(workers));
}

void Head::take_load(std::uint64_t node, NodeLoad load) {
  auto& n = nodes_.at(node);
  n.load = std::move(load);
  for (const auto& w : n.load.workers) {
    auto a = actors_.find(w.actor);
    if (a != actors_.end() && a->second.node == node && a->second.pid == w.pid) a->second.load = w;
  }
}

kj::Array<capnp::word> Head::status_frame() const {
  const auto now = clock::now();
  return net::envelope([&](proto::Envelope::Builder e) {
    auto st = e.initStatus();
    st.setHeadAddress(address());
    st.setUptimeMs(ms_since(started_, now));
    auto list = st.initNodes(static_cast<unsigned>(nodes_.size()));
    unsigned i = 0;
    for (const auto& [id, n] : nodes_) {
      auto b = list[i++];
      b.setId(id);
      b.setHostname(n.hostname);
      b.setAddress(n.address);
      b.setPid(n.pid);
      b.setAlive(n.slot.alive);
      b.setIsHead(n.is_head);
      b.setDeathCause(n.death_cause);
      b.setMsSinceHeartbeat(n.is_head ? 0 : ms_since(n.last_heartbeat, now));
      to_proto(n.slot.total, b.initTotal(static_cast<unsigned>(n.slot.total.size())));
      to_proto(n.slot.used, b.initUsed(static_cast<unsigned>(n.slot.used.size())));
      b.setSharesHostWith(n.shares_with);
      if (n.slot.alive) to_proto(n.load, b.initLoad());
      auto ids = b.initGpuIds(static_cast<unsigned>(n.slot.gpu_ids.size()));
      for (unsigned g = 0; g < n.slot.gpu_ids.size(); ++g) ids.set(g, n.slot.gpu_ids[g]);
      auto used = b.initGpuUsed(static_cast<unsigned>(n.slot.gpu_used.size()));
      for (unsigned g = 0; g < n.slot.gpu_used.size(); ++g) used.set(g, n.slot.gpu_used[g]);
    }
    std::map<std::string, unsigned> counts;
    unsigned pending = 0;
    for (const auto& [id, a] : actors_) {
      ++counts[state_name(static_cast<proto::ActorState>(a.state))];
      if (a.state == kPending) ++pending;
    }
    auto sc = st.initActorStates(static_cast<unsigned>(counts.size()));
    i = 0;
    for (const auto& [state, count] : counts) {
      sc[i].setState(state);
      sc[i].setCount(count);
      ++i;
    }
    st.setPlacementGroups(static_cast<std::uint32_t>(groups_.size()));
    st.setPending(pending);
    auto fill = [&](const std::deque<Event>& ring, capnp::List<proto::Event>::Builder out) {
      unsigned k = 0;
      for (const auto& ev : ring) {
        out[k].setMsAgo(ms_since(ev.at, now));
        out[k].setWhat(ev.what);
        out[k].setCause(ev.cause);
        ++k;
      }
    };
    fill(events_, st.initEvents(static_cast<unsigned>(events_.size())));
    fill(refusals_, st.initRefusals(static_cast<unsigned>(refusals_.size())));
    st.setEventsDropped(events_dropped_);
    auto jobs = st.initJobs(static_cast<unsigned>(jobs_.size()));
    i = 0;
    for (const auto& [key, j] : jobs_) {
      auto b = jobs[i++];
      to_proto(j.status, b.initReport());
      b.setOwner(j.owner_label);
      b.setSerial(key.first);
      b.setMsSinceReport(ms_since(j.last, now));
      const auto& named = j.stragglers.named();
      auto sl = b.initStragglers(static_cast<unsigned>(named.size()));
      for (unsigned k = 0; k < named.size(); ++k) to_proto(named[k], sl[k]);
    }
    auto groups = st.initGroups(static_cast<unsigned>(coll_groups_.size()));
    i = 0;
    for (const auto& [key, g] : coll_groups_) {
      auto b = groups[i++];
      to_proto(g.status, b.initReport());
      b.setOwner(g.owner_label);
      b.setLastRank(-1);
      auto zero = g.ranks.find(0);
      if (zero != g.ranks.end() && zero->second.dt > 0) {
        const auto& z = zero->second;
        const double n = static_cast<double>(std::max<std::size_t>(1, g.status.members.size()));
        b.setOpsPerS(z.d_ops / z.dt);
        b.setBytesPerS(z.d_bytes / z.dt);
        if (z.d_busy > 0) b.setBusBandwidth(z.d_bytes / z.d_busy * 2 * (n - 1) / n);
      }
      double most = 0;
      for (const auto& [rank, r] : g.ranks)
        if (r.d_last > most && r.d_ops > 0) {
          most = r.d_last;
          b.setLastRank(static_cast<std::int32_t>(rank));
          b.setLastShare(r.d_last / r.d_ops);
        }
    }
  });
}

}  // namespace troupe::cluster
