#include "runtime/cluster/resources.hpp"

#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "runtime/device.hpp"
#include "runtime/errors.hpp"

namespace troupe::cluster {

ResourceMap detect_local_resources() {
  ResourceMap r;
  r["CPU"] = std::max(1u, std::thread::hardware_concurrency());
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) r["memory"] = static_cast<double>(pages) * static_cast<double>(page);
  r["GPU"] = static_cast<double>(devices().gpus.size());
  return r;
}

NodeResources local_node_resources(std::string_view declared) {
  NodeResources n;
  n.total = detect_local_resources();
  for (auto& [k, v] : n.total) n.detected.insert(k);
  for (auto& [k, v] : parse_resources(declared)) {
    n.total[k] = v;
    n.detected.erase(k);
  }
  n.host = host_identity();
  return n;
}

std::string host_identity() {
  auto first_line = [](const char* path) {
    std::ifstream in(path);
    std::string s;
    std::getline(in, s);
    return s;
  };
  std::error_code ec;
  auto ns = std::filesystem::read_symlink("/proc/self/ns/net", ec);
  return fmt::format("{}/{}/{}", first_line("/etc/machine-id"), first_line("/proc/sys/kernel/random/boot_id"),
                     ec ? std::string() : ns.string());
}

std::map<std::uint64_t, HostShare> host_shares(const std::vector<HostMember>& nodes) {
  std::map<std::string, std::uint64_t> owner;  // host -> first live node
  for (const auto& n : nodes)
    if (n.alive && !n.host.empty() && (!owner.count(n.host) || n.id < owner[n.host])) owner[n.host] = n.id;
  std::map<std::uint64_t, HostShare> out;
  for (const auto& n : nodes) {
    auto& s = out[n.id];
    s.total = n.reported;
    auto it = owner.find(n.host);
    if (n.host.empty() || it == owner.end() || it->second == n.id) continue;
    s.shares_with = it->second;
    for (const auto& k : n.detected)
      if (s.total.count(k)) s.total[k] = 0;
  }
  return out;
}

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}
bool valid_name(std::string_view n) {
  if (n.empty() || !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_')) return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || c == ':')) return false;
  return true;
}
}  // namespace

ResourceMap parse_resources(std::string_view spec) {
  ResourceMap r;
  while (!trim(spec).empty()) {
    auto comma = spec.find(',');
    std::string_view item = trim(spec.substr(0, comma));
    spec = comma == std::string_view::npos ? std::string_view{} : spec.substr(comma + 1);
    auto eq = item.find('=');
    if (eq == std::string_view::npos)
      throw UsageError(fmt::format("resource '{}': expected name=amount", item));
    auto name = trim(item.substr(0, eq));
    auto amount_text = trim(item.substr(eq + 1));
    if (!valid_name(name)) throw UsageError(fmt::format("resource '{}': '{}' is not a valid name", item, name));
    double amount = 0;
    auto [p, ec] = std::from_chars(amount_text.data(), amount_text.data() + amount_text.size(), amount);
    if (ec != std::errc{} || p != amount_text.data() + amount_text.size() || !std::isfinite(amount) || amount < 0)
      throw UsageError(fmt::format("resource '{}': amount '{}' is not a non-negative number", item, amount_text));
    if (r.count(std::string(name))) throw UsageError(fmt::format("resource '{}' given twice", name));
    r[std::string(name)] = amount;
  }
  return r;
}

std::string format_resources(const ResourceMap& r) {
  std::string out;
  for (const auto& [k, v] : r) {
    if (!out.empty()) out += ", ";
    if (k == "memory")
      out += fmt::format("memory={:.1f} GiB", v / double(1ull << 30));
    else
      out += fmt::format("{}={}", k, v);
  }
  return out;
}

const char* state_name(proto::ActorState s) noexcept {
  switch (s) {
    case proto::ActorState::PENDING: return "PENDING";
    case proto::ActorState::ALIVE: return "ALIVE";
    case proto::ActorState::RESTARTING: return "RESTARTING";
    case proto::ActorState::DEAD: return "DEAD";
  }
  return "?";
}

void to_proto(const ResourceMap& r, capnp::List<proto::Resource>::Builder out) {
  unsigned i = 0;
  for (const auto& [k, v] : r) {
    out[i].setName(k);
    out[i].setAmount(v);
    ++i;
  }
}

ResourceMap from_proto(capnp::List<proto::Resource>::Reader in) {
  ResourceMap r;
  for (auto e : in) r[e.getName().cStr()] = e.getAmount();
  return r;
}

}  // namespace troupe::cluster
