#pragma once
// The head: node table, liveness, and the answers to status queries.
//
// All head state lives on one strand; each connection has its own strand and
// posts what it receives here. A node is declared dead when its connection
// drops or when it misses heartbeats for node_timeout; the cause is kept.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <vector>

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

struct NodeRecord {
  std::uint64_t id = 0;
  std::string hostname, address;
  std::uint32_t pid = 0;
  bool alive = true;
  bool is_head = false;
  std::string death_cause;
  ResourceMap total, used;
  std::chrono::steady_clock::time_point last_heartbeat;
  std::shared_ptr<net::Connection> conn;
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
  void add_local_node(ResourceMap total, std::string hostname);
  /// Peers dropped for failing the handshake or sending bad frames.
  std::size_t dropped_peers() const noexcept { return dropped_.load(); }

 private:
  struct Session;
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::shared_ptr<net::Connection> c);
  asio::awaitable<void> liveness_loop();
  void on_frame(const std::shared_ptr<Session>& s, net::Frame f);
  void on_close(const std::shared_ptr<Session>& s, const std::string& reason);
  void mark_dead(std::uint64_t id, const std::string& cause);
  kj::Array<capnp::word> status_frame() const;
  void drop(const std::string& peer, const std::string& why);

  asio::io_context& io_;
  HeadOptions opts_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::map<std::uint64_t, NodeRecord> nodes_;
  std::vector<std::weak_ptr<net::Connection>> conns_;
  std::vector<std::shared_ptr<Session>> sessions_;  // open sessions (touched on the strand only)
  asio::steady_timer liveness_{strand_};
  std::uint64_t next_node_ = 1;
  std::chrono::steady_clock::time_point started_;
  std::atomic<std::size_t> dropped_{0};
  bool stopped_ = false;
};

}  // namespace troupe::cluster
