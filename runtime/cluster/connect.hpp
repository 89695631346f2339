#pragma once
// Dialling the head, and asking it questions (for the CLI and drivers).
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "runtime/cluster/address.hpp"
#include "runtime/cluster/node_load.hpp"
#include "runtime/cluster/resources.hpp"
#include "runtime/telemetry.hpp"
#include "runtime/trace.hpp"
#include "runtime/net/connection.hpp"

namespace troupe::cluster {

/// Resolves and connects (TCP, no delay) within `limit`; Error says where it failed.
/// `local_host`, if given, gets the local address of the connection (the one
/// the head sees this process at).
boost::asio::awaitable<std::shared_ptr<net::Connection>> connect_to(boost::asio::io_context& io, Address a,
                                                                     std::chrono::milliseconds limit,
                                                                     std::string* local_host = nullptr);

struct NodeView {
  std::uint64_t id = 0;
  std::string hostname, address;
  std::uint32_t pid = 0;
  bool alive = false, is_head = false;
  std::string death_cause;
  ResourceMap total, used;
  std::uint64_t ms_since_heartbeat = 0;
  std::uint64_t shares_host_with = 0;  ///< its host's own resources count on that node
  NodeLoad load;                       ///< its last sample (alive nodes)
  std::vector<unsigned> gpu_ids;       ///< its GPUs, and the share of each actors hold
  std::vector<double> gpu_used;
};

struct EventView {
  std::uint64_t ms_ago = 0;
  std::string what, cause;
};

struct JobView {
  std::string id;                      ///< "serial.job": the driver's session at the head, its job number
  telemetry::JobStatus status;
  std::string owner;
  std::uint64_t ms_since_report = 0;
  std::vector<telemetry::Straggler> stragglers;
};

struct GroupView {
  telemetry::GroupStatus status;
  std::string owner;
  double ops_per_s = 0, bus_bandwidth = 0, bytes_per_s = 0;  ///< rank 0's, over the last second
  int last_rank = -1;      ///< arrived last most often lately (-1: not known)
  double last_share = 0;
};

struct ClusterView {
  std::string head_address;
  std::uint64_t uptime_ms = 0;
  std::vector<NodeView> nodes;
  std::map<std::string, unsigned> actor_states;  ///< "ALIVE" -> count, ...
  unsigned placement_groups = 0;
  unsigned pending = 0;               ///< actors placed whose worker has not started
  std::vector<EventView> events;      ///< recent failures, oldest first
  std::vector<EventView> refusals;    ///< recent infeasible requests
  std::uint64_t events_dropped = 0;
  std::vector<JobView> jobs;
  std::vector<GroupView> groups;
};

struct ActorView {
  std::uint64_t id = 0;
  std::string class_name, name, state;
  std::uint64_t node = 0;
  std::uint32_t pid = 0, restarts = 0;
  std::string death_cause, owner;
  ResourceMap resources;
  std::uint64_t placement_group = 0;
  std::uint64_t rss = 0, gpu_mem = 0;  ///< its worker's, from its node's last sample
  double cpu = 0;
  std::uint64_t calls = 0;             ///< from its worker's counters
  double calls_per_s = 0, p99_s = 0;
  std::uint32_t queue = 0;
};

/// Connects, authenticates as a client and fetches the cluster status.
/// Throws Error with what went wrong (unreachable, wrong token, timeout).
ClusterView query_status(const Address& head, const std::string& token,
                         std::chrono::milliseconds limit = std::chrono::seconds(5), std::size_t* frame_bytes = nullptr);
/// The head's actor directory, every actor it has placed (dead ones too).
std::vector<ActorView> query_actors(const Address& head, const std::string& token,
                                    std::chrono::milliseconds limit = std::chrono::seconds(5),
                                    std::size_t* frame_bytes = nullptr);
/// `troupe logs`: streams an actor's output (actor != 0) or a node's list of
/// log files (actor 0, node) through the head to `out`; returns at the end
/// (never, when following, until the connection drops). Throws Error with
/// the head's or the node's reason (no such actor, not captured, ...).
void stream_logs(const Address& head, const std::string& token, std::uint64_t actor, std::uint64_t node, bool err,
                 std::uint32_t tail, bool follow, const std::function<void(const std::string&)>& out,
                 std::chrono::milliseconds limit = std::chrono::seconds(5));
/// `troupe trace`: every driver's and worker's trace of the next `window`.
/// Throws Error with the head's reason (no driver connected, one at a time).
struct TraceResult {
  std::vector<trace::ProcessTrace> processes;
  std::vector<std::string> notes;  ///< who did not answer, what was left out
};
/// `started` is told how many drivers the head asked, once it has.
TraceResult request_trace(const Address& head, const std::string& token, std::chrono::milliseconds window,
                          const std::function<void(std::uint32_t drivers)>& started = {},
                          std::chrono::milliseconds limit = std::chrono::seconds(5));
/// Asks the head to stop the cluster (`troupe stop`); returns what it said it stops.
std::string request_stop(const Address& head, const std::string& token, const std::string& why,
                         std::chrono::milliseconds limit = std::chrono::seconds(5));

}  // namespace troupe::cluster
