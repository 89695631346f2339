#pragma once
// The head: node table, liveness, the actor directory, resource accounting,
// placement groups, and the answers to status queries.
//
// All head state lives on one strand; each connection has its own strand and
// posts what it receives here. A node is declared dead when its connection
// drops or when it misses heartbeats for node_timeout; the cause is kept, and
// its actors are reported dead to their owners with that cause.
//
// Actors: a driver asks where a process actor goes (placeActor); the head
// reserves the resources and either answers "start it yourself" (the node is
// the driver's own, as in the embedded cluster) or has that node start the
// worker. Nodes report every worker exit; the head frees the resources and
// tells the owner, which decides about restarts and reports back.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "runtime/cluster/launcher.hpp"
#include "runtime/cluster/logs.hpp"
#include "runtime/cluster/node_load.hpp"
#include "runtime/cluster/placement.hpp"
#include "runtime/cluster/resources.hpp"
#include "runtime/net/connection.hpp"
#include "runtime/telemetry.hpp"

namespace troupe::cluster {

namespace asio = boost::asio;
using Millis = std::chrono::milliseconds;

struct HeadOptions {
  std::string bind = "127.0.0.1";  ///< loopback unless told otherwise
  std::uint16_t port = 0;          ///< 0: any free port
  std::string token;
  Millis heartbeat{1000};
  Millis node_timeout{5000};
  Millis handshake_timeout{5000};
};

class Head : public std::enable_shared_from_this<Head> {
 public:
  Head(asio::io_context& io, HeadOptions opts);
  /// Binds and starts serving; throws Error if the address cannot be bound.
  void start();
  /// Closes the listener and every connection.
  void stop();
  std::uint16_t port() const noexcept { return port_; }
  std::string address() const;
  /// Registers the head machine's own node (no connection, always alive).
  /// With a launcher the head starts workers placed there itself (the
  /// daemon); without one, only a driver in this process can use it (the
  /// embedded cluster: placeActor answers "local"). Returns its node id.
  std::uint64_t add_local_node(NodeResources resources, std::string hostname,
                               std::shared_ptr<WorkerLauncher> launcher = nullptr);
  /// Called by the local launcher's exit callback (any thread).
  void local_worker_exited(WorkerExitInfo info);
  /// Peers dropped for failing the handshake or sending bad frames.
  std::size_t dropped_peers() const noexcept { return dropped_.load(); }
  /// `troupe stop` asked the cluster to stop (the nodes have been told);
  /// the daemon stops the head's own workers and the head (any thread, once).
  void on_stop_request(std::function<void(const std::string& why)> fn) { on_stop_ = std::move(fn); }
  /// Serves Prometheus's text format at http://bind:port/metrics (before
  /// start(); port 0: any free one). Returns the port (after start()).
  void serve_metrics(std::uint16_t port) { metrics_wanted_ = true, metrics_port_ = port; }
  std::uint16_t metrics_port() const noexcept { return metrics_port_; }

 private:
  struct Session;
  struct NodeRecord {
    Slot slot;
    NodeResources reported;          // what the node said it has; slot.total is its share
    std::uint64_t shares_with = 0;   // another node on its host holds that host's own resources
    std::string hostname, address;
    std::uint32_t pid = 0;
    bool is_head = false;
    std::string death_cause;
    std::chrono::steady_clock::time_point last_heartbeat;
    std::shared_ptr<net::Connection> conn;
    NodeLoad load;                   // the last heartbeat's (or the head's own sample)
  };
  struct ActorRecord {
    std::uint64_t id = 0;
    std::string class_name, name;
    int state = 0;  // proto::ActorState
    std::uint64_t node = 0;
    std::uint32_t pid = 0;
    std::uint32_t restarts = 0;
    int max_restarts = 0;
    std::string death_cause;
    ResourceMap resources;
    std::uint64_t group = 0;
    int bundle = -1;            // the bundle it draws from (when in a group)
    bool granted = false;
    Grant grant;
    std::weak_ptr<Session> owner;
    std::string owner_label;
    WorkerLoad load;            // its node's last sample of its worker
    telemetry::ActorSample counters;  // its worker's last
    std::chrono::steady_clock::time_point counted;
    double calls_per_s = 0, p99_s = 0;
  };
  struct GroupRecord {
    std::uint64_t id = 0;
    std::string name;
    Strategy strategy = Strategy::pack;
    std::vector<Slot> bundles;   // each bundle is a small pool on its node
    std::vector<Grant> grants;   // what each bundle holds on its node
    std::weak_ptr<Session> owner;
  };

  // Telemetry (head_telemetry.cpp): failures, refusals, jobs, collective groups.
  struct Event {
    std::chrono::steady_clock::time_point at;
    std::string what, cause;
  };
  struct JobRecord {
    telemetry::JobStatus status;
    telemetry::StragglerWatch stragglers;  // named over its reports
    std::string owner_label;
    std::chrono::steady_clock::time_point last;
  };
  struct RankCounters {
    telemetry::GroupSample last;   // cumulative, as reported
    std::chrono::steady_clock::time_point at;
    double d_ops = 0, d_bytes = 0, d_busy = 0, d_last = 0, dt = 0;  // over the last interval
  };
  struct CollGroupRecord {
    telemetry::GroupStatus status;
    std::string owner_label;
    std::map<std::uint32_t, RankCounters> ranks;
  };
  void on_samples(const std::shared_ptr<Session>& s, const telemetry::ProcessSample& p);
  /// A node declared dead or a worker lost (`node`: which), or a request
  /// refused as infeasible: kept in their rings, counted for /metrics.
  void note_failure(bool node, std::string what, std::string cause);
  void note_refusal(std::string what, std::string cause);
  // `troupe logs`: requests relayed to the node that holds the files.
  struct LogRelay {
    std::weak_ptr<Session> client;
    std::uint64_t node = 0;
  };
  void on_logs(const std::shared_ptr<Session>& s, proto::LogsRequest::Reader r);
  void relay_log(std::uint64_t id, const std::string& data, bool eof, const std::string& error);
  void drop_log_relays(const Session* client, std::uint64_t node, const std::string& why);
  void on_reports(const std::shared_ptr<Session>& s, proto::JobReports::Reader r);
  // `troupe trace` (head_trace.cpp): every driver records; the client gets them all.
  struct TraceRelay {
    std::uint64_t id = 0;
    std::weak_ptr<Session> client;
    std::set<std::uint64_t> waiting;   // drivers' session serials
    std::vector<std::string> dumps;    // codec-encoded trace::ProcessTrace
    std::vector<std::string> notes;
    std::size_t bytes = 0;
    std::unique_ptr<asio::steady_timer> timer;
  };
  void on_trace(const std::shared_ptr<Session>& s, std::uint32_t ms);
  void on_trace_reply(const std::shared_ptr<Session>& s, proto::TraceReply::Reader r);
  void trace_left(const Session& s);
  void trace_finish();
  void on_stop_cluster(const std::shared_ptr<Session>& s, const std::string& why);
  /// A driver left: its running jobs end, its groups go.
  void owner_left(const Session& s);
  void forget_dead_actors();
  void sample_own_node();
  /// A node's load (its heartbeat's, or the head's own sample), its
  /// workers' figures onto their actors.
  void take_load(std::uint64_t node, NodeLoad load);
  asio::awaitable<void> metrics_loop();
  asio::awaitable<void> serve_http(asio::ip::tcp::socket sock);
  std::string metrics_text() const;

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<net::Connection> c);
  asio::awaitable<void> liveness_loop();
  void on_frame(const std::shared_ptr<Session>& s, net::Frame f);
  void on_close(const std::shared_ptr<Session>& s, const std::string& reason);
  /// `failure`: counted and listed as one (false: a node that said it was leaving).
  void mark_dead(std::uint64_t id, const std::string& cause, bool failure = true);
  kj::Array<capnp::word> status_frame() const;
  kj::Array<capnp::word> actors_frame() const;
  void drop(const std::string& peer, const std::string& why);

  void place_actor(const std::shared_ptr<Session>& s, proto::PlaceActor::Reader r);
  void create_group(const std::shared_ptr<Session>& s, proto::CreatePlacementGroup::Reader r);
  void remove_group(std::uint64_t id, const std::string& why);
  void worker_started(std::uint64_t actor, std::uint32_t pid);
  /// A worker is gone: free its resources, settle its state, tell its owner
  /// (unless the owner is the one telling us).
  void worker_exit(WorkerExitInfo info, bool node_died, const Session* from);
  void release(ActorRecord& a);
  void kill_worker(const ActorRecord& a);
  std::vector<Slot> node_slots() const;
  /// Recomputes every node's share of its host (host_shares) after a node
  /// joined or died.
  void share_hosts();

  asio::io_context& io_;
  HeadOptions opts_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::map<std::uint64_t, NodeRecord> nodes_;
  std::map<std::uint64_t, ActorRecord> actors_;
  std::map<std::uint64_t, GroupRecord> groups_;
  std::shared_ptr<WorkerLauncher> local_launcher_;
  std::uint64_t local_node_ = 0;
  std::vector<std::weak_ptr<net::Connection>> conns_;
  std::vector<std::shared_ptr<Session>> sessions_;  // open sessions (touched on the strand only)
  asio::steady_timer liveness_{strand_};
  std::uint64_t next_node_ = 1, next_actor_ = 1, next_group_ = 1;
  std::chrono::steady_clock::time_point started_;
  std::atomic<std::size_t> dropped_{0};
  bool stopped_ = false;

  std::deque<Event> events_, refusals_;
  std::uint64_t events_dropped_ = 0;
  std::map<std::pair<std::uint64_t, std::uint64_t>, JobRecord> jobs_;  // (session serial, job id)
  std::map<std::pair<std::uint64_t, std::string>, CollGroupRecord> coll_groups_;  // (session serial, name)
  std::deque<std::uint64_t> dead_actors_;  // in the order they died (the oldest are forgotten)
  std::uint64_t next_session_ = 1;
  std::function<void(const std::string&)> on_stop_;
  bool stop_requested_ = false;
  LoadSampler own_load_;
  bool metrics_wanted_ = false;
  std::uint16_t metrics_port_ = 0;
  std::unique_ptr<asio::ip::tcp::acceptor> metrics_acceptor_;
  std::uint64_t http_requests_ = 0;
  std::map<std::uint64_t, LogRelay> log_relays_;
  std::unique_ptr<TraceRelay> trace_;  // one at a time
  std::uint64_t next_trace_ = 1;
  std::uint64_t next_log_ = 1;
  std::unique_ptr<LogServer> local_logs_;  // the head's own node, when its launcher captures output
  std::uint64_t node_failures_ = 0, actor_failures_ = 0, refusals_total_ = 0;
  std::uint64_t calls_total_ = 0;  // every reported actor's calls, summed as they grow (a counter)
};

struct Head::Session {
  std::shared_ptr<net::Connection> conn;
  std::uint64_t serial = 0;   // keys its jobs and groups (a pointer's address can be reused)
  proto::Role role = proto::Role::CLIENT;
  std::uint64_t node_id = 0;  // set once a node registers
  bool driver = false;        // it placed actors or reported jobs: `troupe trace` asks it
};

}  // namespace troupe::cluster
