#include "tools/cli/cluster_commands.hpp"

#include <string>

#include <fmt/format.h>

#include "runtime/cluster/connect.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/auth.hpp"

namespace troupe::cli {

namespace {

struct Flags {
  std::string address, token, token_file;
  bool json = false;
};

Flags parse(int argc, char** argv) {
  Flags f;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(fmt::format("{} needs a value", a));
      return argv[++i];
    };
    if (a == "--address") f.address = value();
    else if (a == "--token") f.token = value();
    else if (a == "--token-file") f.token_file = value();
    else if (a == "--json") f.json = true;
    else throw UsageError(fmt::format("unknown option '{}'", a));
  }
  return f;
}

cluster::ClusterView fetch(const Flags& f) {
  auto addr = cluster::resolve_address(f.address, f.token_file);
  return cluster::query_status(addr, net::resolve_token(f.token, f.token_file));
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", c);
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string json_resources(const cluster::ResourceMap& r) {
  std::string out = "{";
  for (const auto& [k, v] : r) out += fmt::format("{}{}:{}", out.size() > 1 ? "," : "", json_string(k), v);
  return out + "}";
}

std::string node_json(const cluster::NodeView& n) {
  return fmt::format(
      "{{\"id\":{},\"hostname\":{},\"address\":{},\"pid\":{},\"state\":\"{}\",\"is_head\":{},"
      "\"death_cause\":{},\"ms_since_heartbeat\":{},\"total\":{},\"used\":{},\"shares_host_with\":{}}}",
      n.id, json_string(n.hostname), json_string(n.address), n.pid, n.alive ? "ALIVE" : "DEAD",
      n.is_head ? "true" : "false", json_string(n.death_cause), n.ms_since_heartbeat, json_resources(n.total),
      json_resources(n.used), n.shares_host_with);
}

// A table cell on one line: a cause with line breaks (an exception's
// multi-line message) would break the table's rows.
std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += " | ";
    } else if (c == '\r' || c == '\t') {
      out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '|')) out.pop_back();
  return out;
}

std::string amount(const std::string& name, double v) {
  if (name == "memory") return fmt::format("{:.1f}GiB", v / double(1ull << 30));
  return fmt::format("{}", v);
}

}  // namespace

int status_command(int argc, char** argv) {
  auto f = parse(argc, argv);
  auto view = fetch(f);
  std::size_t alive = 0;
  cluster::ResourceMap total, used;
  for (auto& n : view.nodes) {
    if (!n.alive) continue;
    ++alive;
    for (auto& [k, v] : n.total) total[k] += v;
    for (auto& [k, v] : n.used) used[k] += v;
  }
  if (f.json) {
    std::string nodes;
    for (auto& n : view.nodes) nodes += (nodes.empty() ? "" : ",") + node_json(n);
    std::string actors;
    for (auto& [state, n] : view.actor_states)
      actors += fmt::format("{}{}:{}", actors.empty() ? "" : ",", json_string(state), n);
    fmt::print("{{\"head\":{},\"uptime_ms\":{},\"nodes_alive\":{},\"nodes_dead\":{},\"resources_total\":{},"
               "\"resources_used\":{},\"actors\":{{{}}},\"placement_groups\":{},\"nodes\":[{}]}}\n",
               json_string(view.head_address), view.uptime_ms, alive, view.nodes.size() - alive,
               json_resources(total), json_resources(used), actors, view.placement_groups, nodes);
    return 0;
  }
  fmt::print("======== Cluster status (head {}, up {:.0f} s) ========\n", view.head_address, view.uptime_ms / 1000.0);
  fmt::print("Nodes\n  {} alive\n  {} dead\n", alive, view.nodes.size() - alive);
  for (auto& n : view.nodes)
    if (!n.alive) fmt::print("    node {} ({}): {}\n", n.id, n.address, one_line(n.death_cause));
  fmt::print("Resources (used / total, alive nodes)\n");
  for (auto& [k, v] : total) fmt::print("  {:>10} / {:<10} {}\n", amount(k, used[k]), amount(k, v), k);
  fmt::print("Actors\n");
  if (view.actor_states.empty()) fmt::print("  none placed yet\n");
  for (auto& [state, n] : view.actor_states) fmt::print("  {} {}\n", n, state);
  fmt::print("Placement groups\n  {}\n", view.placement_groups);
  return 0;
}

int nodes_command(int argc, char** argv) {
  auto f = parse(argc, argv);
  auto view = fetch(f);
  if (f.json) {
    std::string nodes;
    for (auto& n : view.nodes) nodes += (nodes.empty() ? "" : ",") + node_json(n);
    fmt::print("[{}]\n", nodes);
    return 0;
  }
  fmt::print("{:<4} {:<6} {:<22} {:<16} {:<8} {:>9}  {}\n", "ID", "STATE", "ADDRESS", "HOSTNAME", "PID", "HB_AGE",
             "RESOURCES / DEATH CAUSE");
  for (auto& n : view.nodes) {
    std::string res;
    for (auto& [k, v] : n.total) res += fmt::format("{}{}={}", res.empty() ? "" : " ", k, amount(k, v));
    if (n.shares_host_with) res += fmt::format(" (shares its host with node {})", n.shares_host_with);
    fmt::print("{:<4} {:<6} {:<22} {:<16} {:<8} {:>7}ms  {}\n", n.id, n.alive ? "ALIVE" : "DEAD", n.address,
               n.hostname + (n.is_head ? " (head)" : ""), n.pid, n.ms_since_heartbeat,
               n.alive ? res : one_line(n.death_cause));
  }
  return 0;
}

int actors_command(int argc, char** argv) {
  auto f = parse(argc, argv);
  // The address first (as status and nodes): with no cluster, that is what to say.
  auto addr = cluster::resolve_address(f.address, f.token_file);
  auto list = cluster::query_actors(addr, net::resolve_token(f.token, f.token_file));
  if (f.json) {
    std::string out;
    for (auto& a : list)
      out += fmt::format(
          "{}{{\"id\":{},\"class\":{},\"name\":{},\"state\":\"{}\",\"node\":{},\"pid\":{},\"restarts\":{},"
          "\"death_cause\":{},\"resources\":{},\"placement_group\":{},\"owner\":{}}}",
          out.empty() ? "" : ",", a.id, json_string(a.class_name), json_string(a.name), a.state, a.node, a.pid,
          a.restarts, json_string(a.death_cause), json_resources(a.resources), a.placement_group,
          json_string(a.owner));
    fmt::print("[{}]\n", out);
    return 0;
  }
  fmt::print("{:<5} {:<11} {:<24} {:<16} {:<5} {:<8} {:>8}  {}\n", "ID", "STATE", "CLASS", "NAME", "NODE", "PID",
             "RESTARTS", "RESOURCES / DEATH CAUSE");
  for (auto& a : list) {
    std::string res;
    for (auto& [k, v] : a.resources) res += fmt::format("{}{}={}", res.empty() ? "" : " ", k, amount(k, v));
    fmt::print("{:<5} {:<11} {:<24} {:<16} {:<5} {:<8} {:>8}  {}\n", a.id, a.state, a.class_name,
               a.name.empty() ? "-" : a.name, a.node, a.pid ? std::to_string(a.pid) : "-", a.restarts,
               a.state == "DEAD" || a.state == "RESTARTING" ? one_line(a.death_cause) : res);
  }
  return 0;
}

}  // namespace troupe::cli
