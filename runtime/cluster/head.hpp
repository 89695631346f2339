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
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "runtime/cluster/launcher.hpp"
#include "runtime/cluster/placement.hpp"
#include "runtime/cluster/resources.hpp"
#include "runtime/net/connection.hpp"

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
  };
  struct GroupRecord {
    std::uint64_t id = 0;
    std::string name;
    Strategy strategy = Strategy::pack;
    std::vector<Slot> bundles;   // each bundle is a small pool on its node
    std::vector<Grant> grants;   // what each bundle holds on its node
    std::weak_ptr<Session> owner;
  };

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<net::Connection> c);
  asio::awaitable<void> liveness_loop();
  void on_frame(const std::shared_ptr<Session>& s, net::Frame f);
  void on_close(const std::shared_ptr<Session>& s, const std::string& reason);
  void mark_dead(std::uint64_t id, const std::string& cause);
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
};

struct Head::Session {
  std::shared_ptr<net::Connection> conn;
  proto::Role role = proto::Role::CLIENT;
  std::uint64_t node_id = 0;  // set once a node registers
};

}  // namespace troupe::cluster
