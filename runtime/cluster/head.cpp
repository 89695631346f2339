#include "runtime/cluster/head.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "runtime/codec/capnp.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::cluster {

using clock = std::chrono::steady_clock;

Head::Head(asio::io_context& io, HeadOptions opts)
    : io_(io), opts_(std::move(opts)), strand_(asio::make_strand(io)), acceptor_(strand_) {}

std::string Head::address() const { return fmt::format("{}:{}", opts_.bind, port_); }

void Head::start() {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(opts_.bind, ec);
  if (ec) throw UsageError(fmt::format("head: '{}' is not an IP address to bind", opts_.bind));
  asio::ip::tcp::endpoint ep(addr, opts_.port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor_.bind(ep, ec);
  if (ec) throw Error(fmt::format("head: cannot listen on {}:{}: {}", opts_.bind, opts_.port, ec.message()));
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  started_ = clock::now();
  if (local_node_) nodes_[local_node_].address = address();
  auto self = shared_from_this();
  if (metrics_wanted_) {
    metrics_acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(strand_);
    asio::ip::tcp::endpoint mep(addr, metrics_port_);
    metrics_acceptor_->open(mep.protocol());
    metrics_acceptor_->set_option(asio::ip::tcp::acceptor::reuse_address(true));
    metrics_acceptor_->bind(mep, ec);
    if (ec)
      throw Error(fmt::format("head: cannot serve metrics on {}:{}: {}", opts_.bind, metrics_port_, ec.message()));
    metrics_acceptor_->listen();
    metrics_port_ = metrics_acceptor_->local_endpoint().port();
    asio::co_spawn(strand_, metrics_loop(), [self](std::exception_ptr) {});
  }
  asio::co_spawn(strand_, accept_loop(), [self](std::exception_ptr) {});
  asio::co_spawn(strand_, liveness_loop(), [self](std::exception_ptr) {});
}

void Head::stop() {
  asio::post(strand_, [self = shared_from_this()]() {
    self->stopped_ = true;
    if (self->local_logs_) self->local_logs_->cancel_all();
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
    if (self->metrics_acceptor_) self->metrics_acceptor_->close(ignored);
    self->liveness_.cancel();
    for (auto& w : self->conns_)
      if (auto c = w.lock()) c->close("head stopping");
    self->conns_.clear();
    for (auto& [id, n] : self->nodes_) n.conn.reset();
  });
}

std::uint64_t Head::add_local_node(NodeResources resources, std::string hostname,
                                   std::shared_ptr<WorkerLauncher> launcher) {
  // Before start(): nothing else touches the tables yet.
  NodeRecord n;
  const std::uint64_t id = next_node_++;
  n.slot = Slot::node_slot(id, fmt::format("node {} ({}, head)", id, hostname), resources.total);
  n.reported = std::move(resources);
  n.hostname = std::move(hostname);
  n.address = address();
  n.pid = static_cast<std::uint32_t>(::getpid());
  n.is_head = true;
  n.last_heartbeat = clock::now();
  nodes_[id] = std::move(n);
  share_hosts();
  local_node_ = id;
  local_launcher_ = std::move(launcher);
  if (local_launcher_ && !local_launcher_->logs().dir.empty())
    local_logs_ = std::make_unique<LogServer>(io_, local_launcher_->logs(), fmt::format("node {} (the head's)", id));
  return id;
}

void Head::local_worker_exited(WorkerExitInfo info) {
  asio::post(strand_, [self = shared_from_this(), info = std::move(info)]() mutable {
    self->worker_exit(std::move(info), false, nullptr);
  });
}

void Head::drop(const std::string& peer, const std::string& why) {
  ++dropped_;
  fmt::print(stderr, "troupe-head: dropped peer {}: {}\n", peer, why);
}

asio::awaitable<void> Head::accept_loop() {
  while (!stopped_) {
    auto sock = co_await acceptor_.async_accept(asio::make_strand(io_), asio::use_awaitable);
    boost::system::error_code ec;
    auto ep = sock.remote_endpoint(ec);
    std::string peer = ec ? "unknown peer" : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    sock.set_option(asio::ip::tcp::no_delay(true), ec);
    auto conn = net::Connection::make(net::Connection::Socket(std::move(sock)), peer);
    std::erase_if(conns_, [](auto& w) { return w.expired(); });
    conns_.push_back(conn);
    asio::co_spawn(conn->executor(), serve(conn), asio::detached);
  }
}

asio::awaitable<void> Head::serve(std::shared_ptr<net::Connection> c) {
  auto s = std::make_shared<Session>();
  s->conn = c;
  try {
    s->role = co_await net::accept_handshake(c, opts_.token, opts_.handshake_timeout);
  } catch (const boost::system::system_error& e) {
    drop(c->peer(), fmt::format("handshake: {}", e.code() == asio::error::eof ? "peer hung up" : e.code().message()));
    c->close("handshake failed");
    co_return;
  } catch (const std::exception& e) {
    drop(c->peer(), e.what());
    c->close("handshake failed");
    co_return;
  }
  asio::post(strand_, [self = shared_from_this(), s]() {
    s->serial = self->next_session_++;
    self->sessions_.push_back(s);
  });
  std::weak_ptr<Head> weak = weak_from_this();
  std::weak_ptr<Session> ws = s;
  c->start(
      [weak, ws](net::Frame f) {
        auto self = weak.lock();
        auto s = ws.lock();
        if (!self || !s) return;
        asio::post(self->strand_, [self, s, f = std::move(f)]() mutable { self->on_frame(s, std::move(f)); });
      },
      [weak, s](const std::string& reason) {
        if (auto self = weak.lock()) asio::post(self->strand_, [self, s, reason]() { self->on_close(s, reason); });
      });
}

namespace {
constexpr int kAlive = static_cast<int>(proto::ActorState::ALIVE);
constexpr int kRestarting = static_cast<int>(proto::ActorState::RESTARTING);
constexpr int kDead = static_cast<int>(proto::ActorState::DEAD);
}  // namespace

void Head::on_frame(const std::shared_ptr<Session>& s, net::Frame f) {
  auto env = f.root<proto::Envelope>();
  auto protocol_error = [&](const std::string& why) {
    drop(s->conn->peer(), why);
    s->conn->send(net::envelope([&](proto::Envelope::Builder e) { e.initError().setMessage(why); }));
    s->conn->finish();
  };
  const bool is_node = s->role == proto::Role::NODE && s->node_id != 0;
  switch (env.which()) {
    case proto::Envelope::REGISTER_NODE: {
      if (s->role != proto::Role::NODE || s->node_id != 0)
        return protocol_error("registerNode from a peer that is not an unregistered node");
      auto r = env.getRegisterNode();
      NodeRecord n;
      const std::uint64_t id = next_node_++;
      n.hostname = r.getHostname().cStr();
      n.address = r.getAddress().size() ? r.getAddress().cStr() : s->conn->peer();
      n.reported.total = from_proto(r.getResources());
      n.reported.host = r.getHost().cStr();
      for (auto d : r.getDetected()) n.reported.detected.insert(d.cStr());
      n.slot = Slot::node_slot(id, fmt::format("node {} ({})", id, n.hostname), n.reported.total);
      n.pid = r.getPid();
      n.last_heartbeat = clock::now();
      n.conn = s->conn;
      s->node_id = id;
      nodes_[id] = std::move(n);
      share_hosts();
      {
        const auto& joined = nodes_[id];
        fmt::print(stderr, "troupe-head: node {} joined from {} ({}): {}{}\n", id, joined.address, joined.hostname,
                   format_resources(joined.slot.total),
                   !joined.shares_with ? std::string()
                   : joined.reported.detected.count("CPU") || joined.reported.detected.count("memory")
                       ? fmt::format(" (shares its host with node {}: the host's own CPUs, memory and GPUs count "
                                     "there; give this daemon its share with --resources CPU=N,memory=BYTES)",
                                     joined.shares_with)
                       : fmt::format(" (shares its host with node {}, with the CPUs and memory it was given)",
                                     joined.shares_with));
      }
      s->conn->send(net::envelope([&](proto::Envelope::Builder e) {
        auto w = e.initWelcome();
        w.setNodeId(s->node_id);
        const auto& n = nodes_[s->node_id];
        to_proto(n.slot.total, w.initGranted(static_cast<unsigned>(n.slot.total.size())));
        w.setSharesHostWith(n.shares_with);
        w.setHeadVersion(net::kProtocolVersion);
      }));
      return;
    }
    case proto::Envelope::HEARTBEAT: {
      auto it = nodes_.find(s->node_id);
      if (it == nodes_.end() || !it->second.slot.alive) return;
      it->second.last_heartbeat = clock::now();
      if (env.getHeartbeat().hasLoad()) take_load(s->node_id, load_from_proto(env.getHeartbeat().getLoad()));
      return;
    }
    case proto::Envelope::STATUS_REQUEST:
      s->conn->send(status_frame());
      return;
    case proto::Envelope::ACTORS_REQUEST:
      s->conn->send(actors_frame());
      return;
    case proto::Envelope::PLACE_ACTOR:
      if (s->role != proto::Role::CLIENT) return protocol_error("placeActor from a peer that is not a driver");
      s->driver = true;
      return place_actor(s, env.getPlaceActor());
    case proto::Envelope::CREATE_PLACEMENT_GROUP:
      if (s->role != proto::Role::CLIENT) return protocol_error("createPlacementGroup from a peer that is not a driver");
      return create_group(s, env.getCreatePlacementGroup());
    case proto::Envelope::REMOVE_PLACEMENT_GROUP: {
      auto g = groups_.find(env.getRemovePlacementGroup());
      if (g != groups_.end() && g->second.owner.lock() == s) remove_group(g->first, "its placement group was removed");
      return;
    }
    case proto::Envelope::WORKER_STARTED: {
      if (!is_node) return protocol_error("workerStarted from a peer that is not a node");
      auto w = env.getWorkerStarted();
      auto a = actors_.find(w.getActorId());
      if (a == actors_.end() || a->second.node != s->node_id) return;  // stale: the actor moved on
      return worker_started(w.getActorId(), w.getPid());
    }
    case proto::Envelope::WORKER_EXIT: {
      auto w = env.getWorkerExit();
      auto a = actors_.find(w.getActorId());
      if (a == actors_.end()) return;
      // Nodes report their workers; an owner reports the ones it started itself.
      const bool from_node = is_node && a->second.node == s->node_id;
      const bool from_owner = a->second.owner.lock() == s;
      if (!from_node && !from_owner) return;
      WorkerExitInfo info = exit_from_proto(w);
      if (from_node && info.pid && a->second.pid && static_cast<std::uint32_t>(info.pid) != a->second.pid) return;
      return worker_exit(std::move(info), false, s.get());
    }
    case proto::Envelope::ACTOR_REPORT: {
      auto r = env.getActorReport();
      auto a = actors_.find(r.getActorId());
      if (a == actors_.end() || a->second.owner.lock() != s) return;
      auto& rec = a->second;
      const int st = static_cast<int>(r.getState());
      if (st == kAlive) {
        if (rec.state == kDead) return;
        rec.state = kAlive;
        if (r.getPid()) rec.pid = r.getPid();
      } else if (st == kDead) {
        release(rec);
        if (rec.state != kDead) dead_actors_.push_back(rec.id);
        rec.state = kDead;
        rec.death_cause = r.getDetail().cStr();
      } else if (st == kRestarting) {
        if (rec.state != kDead) rec.state = kRestarting;
      }
      rec.restarts = std::max(rec.restarts, r.getRestarts());
      return;
    }
    case proto::Envelope::LEAVING:
      if (!is_node) return protocol_error("leaving from a peer that is not a node");
      return mark_dead(s->node_id, fmt::format("stopped: {}", env.getLeaving().cStr()), false);
    case proto::Envelope::JOB_REPORTS:
      if (s->role != proto::Role::CLIENT) return protocol_error("jobReports from a peer that is not a driver");
      s->driver = true;
      return on_reports(s, env.getJobReports());
    case proto::Envelope::TRACE_REQUEST:
      if (s->role != proto::Role::CLIENT) return protocol_error("traceRequest from a peer that is not a client");
      return on_trace(s, env.getTraceRequest().getMs());
    case proto::Envelope::TRACE_REPLY:
      if (s->role != proto::Role::CLIENT) return protocol_error("traceReply from a peer that is not a driver");
      return on_trace_reply(s, env.getTraceReply());
    case proto::Envelope::LOGS_REQUEST:
      if (s->role != proto::Role::CLIENT) return protocol_error("logsRequest from a peer that is not a client");
      return on_logs(s, env.getLogsRequest());
    case proto::Envelope::LOGS_CHUNK: {
      if (!is_node) return protocol_error("logsChunk from a peer that is not a node");
      auto k = env.getLogsChunk();
      auto relay = log_relays_.find(k.getRequestId());
      if (relay == log_relays_.end() || relay->second.node != s->node_id) return;  // its client left
      const auto d = k.getData();
      return relay_log(k.getRequestId(), codec::text_of(d), k.getEof(),
                       k.getError().cStr());
    }
    case proto::Envelope::STOP_CLUSTER:
      if (s->role != proto::Role::CLIENT) return protocol_error("stopCluster from a peer that is not a client");
      return on_stop_cluster(s, env.getStopCluster().cStr());
    case proto::Envelope::KILL_WORKER: {
      auto a = actors_.find(env.getKillWorker());
      if (a == actors_.end() || a->second.owner.lock() != s) return;
      kill_worker(a->second);
      return;
    }
    default:
      return protocol_error("unexpected message");
  }
}

void Head::on_close(const std::shared_ptr<Session>& s, const std::string& reason) {
  std::erase(sessions_, s);
  owner_left(*s);
  drop_log_relays(s.get(), 0, "");
  trace_left(*s);
  if (s->node_id) mark_dead(s->node_id, fmt::format("connection lost: {}", reason));
  // A driver that leaves takes its actors and placement groups with it.
  std::vector<std::uint64_t> groups;
  for (auto& [id, g] : groups_)
    if (g.owner.lock() == s || g.owner.expired()) groups.push_back(id);
  for (auto id : groups) remove_group(id, "its driver exited");
  for (auto& [id, a] : actors_) {
    if (a.state == kDead) continue;
    auto owner = a.owner.lock();
    if (owner && owner != s) continue;
    kill_worker(a);
    release(a);
    a.state = kDead;
    a.death_cause = "its driver exited";
    dead_actors_.push_back(id);
  }
  forget_dead_actors();
}

void Head::share_hosts() {
  std::vector<HostMember> members;
  for (const auto& [id, n] : nodes_)
    members.push_back({id, n.reported.host, n.reported.total, n.reported.detected, n.slot.alive});
  for (auto& [id, share] : host_shares(members)) {
    auto& n = nodes_.at(id);
    n.shares_with = share.shares_with;
    if (share.total == n.slot.total) continue;
    // Devices: a node that lost its host's GPUs has none to hand out (its
    // grants so far stay counted in `used`).
    Slot fresh = Slot::node_slot(id, n.slot.label, share.total);
    fresh.alive = n.slot.alive;
    fresh.used = n.slot.used;
    fresh.actors = n.slot.actors;
    for (std::size_t g = 0; g < fresh.gpu_used.size() && g < n.slot.gpu_used.size(); ++g)
      fresh.gpu_used[g] = n.slot.gpu_used[g];
    n.slot = std::move(fresh);
  }
}

void Head::mark_dead(std::uint64_t id, const std::string& cause, bool failure) {
  auto it = nodes_.find(id);
  if (it == nodes_.end() || !it->second.slot.alive) return;
  it->second.slot.alive = false;
  it->second.death_cause = cause;
  fmt::print(stderr, "troupe-head: node {} ({}) is dead: {}\n", id, it->second.address, cause);
  if (failure) note_failure(true, fmt::format("{} died", it->second.slot.label), cause);
  drop_log_relays(nullptr, id, fmt::format("{} died: {}", it->second.slot.label, cause));
  if (it->second.conn) {
    it->second.conn->close(cause);
    it->second.conn.reset();
  }
  for (auto& [gid, g] : groups_)
    for (auto& b : g.bundles)
      if (b.node == id) b.alive = false;
  share_hosts();  // its host's own resources pass to another node there, if any
  const std::string why = fmt::format("{} died: {}", it->second.slot.label, cause);
  for (auto& [aid, a] : actors_) {
    if (a.node != id || a.state == kDead || a.state == kRestarting) continue;
    WorkerExitInfo info{aid, static_cast<pid_t>(a.pid), a.pid != 0, 0, 0, why};
    worker_exit(std::move(info), true, nullptr);
  }
}

asio::awaitable<void> Head::liveness_loop() {
  std::uint64_t seq = 0;
  while (!stopped_) {
    liveness_.expires_after(opts_.heartbeat);
    co_await liveness_.async_wait(asio::use_awaitable);
    const auto now = clock::now();
    ++seq;
    sample_own_node();
    forget_dead_actors();
    for (auto& [id, n] : nodes_) {
      if (!n.slot.alive || n.is_head) continue;
      auto silent = std::chrono::duration_cast<Millis>(now - n.last_heartbeat);
      if (silent > opts_.node_timeout) {
        mark_dead(id, fmt::format("missed heartbeats for {} ms (timeout {} ms)", silent.count(),
                                  opts_.node_timeout.count()));
        continue;
      }
      if (n.conn)
        n.conn->send(net::envelope([&](proto::Envelope::Builder e) {
          auto h = e.initHeartbeat();
          h.setSeq(seq);
        }));
    }
  }
}

}  // namespace troupe::cluster
