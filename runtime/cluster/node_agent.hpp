#pragma once
// A node daemon's link to the head: register, heartbeat, watch the head, and
// start / kill / report the worker processes the head places here.
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include "runtime/cluster/address.hpp"
#include "runtime/cluster/launcher.hpp"
#include "runtime/cluster/logs.hpp"
#include "runtime/cluster/node_load.hpp"
#include "runtime/cluster/resources.hpp"
#include "runtime/net/connection.hpp"

namespace troupe::cluster {

namespace asio = boost::asio;

struct NodeOptions {
  Address head;
  std::string token;
  NodeResources resources;
  std::string hostname;
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::milliseconds head_timeout{5000};
  std::chrono::milliseconds connect_timeout{5000};
  LogConfig logs;  ///< where workers' output goes ("" dir: inherited, not captured)
};

class NodeAgent : public std::enable_shared_from_this<NodeAgent> {
 public:
  /// `on_joined(node_id)` once registered (granted(), shares_host_with() are
  /// then what the head counts for it); `on_lost(reason)` once, if the head
  /// cannot be reached, refuses us, or goes silent.
  NodeAgent(asio::io_context& io, NodeOptions opts, std::function<void(std::uint64_t)> on_joined,
            std::function<void(const std::string&)> on_lost);
  void start();
  void stop();
  /// What the head counts for this node once joined, and the node its host's
  /// own resources count on (0: none): see host_shares.
  const ResourceMap& granted() const noexcept { return granted_; }
  std::uint64_t shares_host_with() const noexcept { return shares_with_; }
  /// The head told it to stop (`troupe stop`): on_lost was a clean stop.
  bool stopped_by_head() const noexcept { return stopped_; }

 private:
  asio::awaitable<void> run();
  asio::awaitable<void> heartbeat_loop();
  void lost(const std::string& reason);
  void on_frame(net::Frame f);  // on strand_
  void report_exit(WorkerExitInfo info);

  asio::io_context& io_;
  NodeOptions opts_;
  asio::strand<asio::io_context::executor_type> strand_;
  std::shared_ptr<net::Connection> conn_;
  std::shared_ptr<WorkerLauncher> launcher_;
  std::function<void(std::uint64_t)> on_joined_;
  std::function<void(const std::string&)> on_lost_;
  std::chrono::steady_clock::time_point last_head_;
  std::uint64_t node_id_ = 0;
  ResourceMap granted_;
  std::uint64_t shares_with_ = 0;
  bool done_ = false;
  bool stopped_ = false;
  LoadSampler sampler_;
  std::unique_ptr<LogServer> logs_;
};

}  // namespace troupe::cluster
