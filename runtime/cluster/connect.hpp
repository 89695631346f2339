#pragma once
// Dialling the head, and asking it questions (for the CLI and drivers).
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include "runtime/cluster/address.hpp"
#include "runtime/cluster/resources.hpp"
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
};

struct ClusterView {
  std::string head_address;
  std::uint64_t uptime_ms = 0;
  std::vector<NodeView> nodes;
  std::map<std::string, unsigned> actor_states;  ///< "ALIVE" -> count, ...
  unsigned placement_groups = 0;
};

struct ActorView {
  std::uint64_t id = 0;
  std::string class_name, name, state;
  std::uint64_t node = 0;
  std::uint32_t pid = 0, restarts = 0;
  std::string death_cause, owner;
  ResourceMap resources;
  std::uint64_t placement_group = 0;
};

/// Connects, authenticates as a client and fetches the cluster status.
/// Throws Error with what went wrong (unreachable, wrong token, timeout).
ClusterView query_status(const Address& head, const std::string& token,
                         std::chrono::milliseconds limit = std::chrono::seconds(5));
/// The head's actor directory, every actor it has placed (dead ones too).
std::vector<ActorView> query_actors(const Address& head, const std::string& token,
                                    std::chrono::milliseconds limit = std::chrono::seconds(5));

}  // namespace troupe::cluster
