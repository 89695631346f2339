#include "tools/cli/listings.hpp"

#include <fmt/format.h>

namespace troupe::cli {

namespace {
constexpr std::uint64_t kRecentMs = 5 * 60 * 1000;  // a failure this recent makes the cluster unhealthy
constexpr std::uint64_t kRefusalMs = 60 * 1000;
}  // namespace

std::string percent(double v) { return fmt::format("{:.0f}%", v * 100); }

std::string node_json(const cluster::NodeView& n) {
  std::string gpus;
  for (const auto& g : n.load.gpus)
    gpus += fmt::format("{}{{\"index\":{},\"util\":{},\"mem_used\":{},\"mem_total\":{}}}", gpus.empty() ? "" : ",",
                        g.index, json_number(g.util), g.mem_used, g.mem_total);
  std::string shares;
  for (std::size_t g = 0; g < n.gpu_ids.size() && g < n.gpu_used.size(); ++g)
    shares += fmt::format("{}{{\"gpu\":{},\"used\":{}}}", shares.empty() ? "" : ",", n.gpu_ids[g],
                          json_number(n.gpu_used[g]));
  return fmt::format(
      "{{\"id\":{},\"hostname\":{},\"address\":{},\"pid\":{},\"state\":\"{}\",\"is_head\":{},"
      "\"death_cause\":{},\"ms_since_heartbeat\":{},\"total\":{},\"used\":{},\"shares_host_with\":{},"
      "\"cpu_util\":{},\"mem_used\":{},\"mem_total\":{},\"workers\":{},\"gpus\":[{}],\"gpu_shares\":[{}]}}",
      n.id, json_string(n.hostname), json_string(n.address), n.pid, n.alive ? "ALIVE" : "DEAD",
      n.is_head ? "true" : "false", json_string(n.death_cause), n.ms_since_heartbeat, json_resources(n.total),
      json_resources(n.used), n.shares_host_with, json_number(n.load.cpu), n.load.mem_used, n.load.mem_total,
      n.load.workers.size(), gpus, shares);
}

std::string split_text(const telemetry::PhaseSplit& s) {
  const double total = s.data + s.forward + s.backward + s.collective + s.optimizer;
  if (total <= 0) return "-";
  auto pct = [&](double v) { return static_cast<int>(v / total * 100 + 0.5); };
  return fmt::format("data {}% fwd {}% bwd {}% coll {}% opt {}%", pct(s.data), pct(s.forward), pct(s.backward),
                     pct(s.collective), pct(s.optimizer));
}

std::string job_json(const cluster::JobView& j) {
  const auto& s = j.status;
  std::string ranks, stragglers;
  for (const auto& r : s.ranks)
    ranks += fmt::format("{}{{\"rank\":{},\"label\":{},\"peers\":{},\"actor\":{},\"compute_s\":{},\"wait_s\":{}}}",
                         ranks.empty() ? "" : ",", r.rank, json_string(r.label), json_string(r.peers), r.actor_id,
                         json_number(r.compute_s), json_number(r.wait_s));
  for (const auto& g : j.stragglers)
    stragglers += fmt::format(
        "{}{{\"rank\":{},\"label\":{},\"compute_s\":{},\"peers_s\":{},\"slowdown\":{},\"since_step\":{},"
        "\"text\":{}}}",
        stragglers.empty() ? "" : ",", g.rank, json_string(g.label), json_number(g.compute_s), json_number(g.peers_s),
        json_number(g.slowdown), g.since_step, json_string(telemetry::describe(g)));
  return fmt::format(
      "{{\"id\":{},\"name\":{},\"strategy\":{},\"state\":{},\"step\":{},\"total_steps\":{},\"epoch\":{},\"loss\":{},"
      "\"samples_per_s\":{},\"elapsed_s\":{},\"eta_s\":{},\"step_s\":{},\"test_accuracy\":{},\"recoveries\":{},"
      "\"detail\":{},\"owner\":{},\"ms_since_report\":{},\"split\":{{\"data\":{},\"forward\":{},\"backward\":{},"
      "\"collective\":{},\"optimizer\":{}}},\"ranks\":[{}],\"stragglers\":[{}]}}",
      json_string(j.id), json_string(s.name), json_string(s.strategy), json_string(s.state), s.step, s.total_steps,
      s.epoch, json_number(s.loss), json_number(s.samples_per_s), json_number(s.elapsed_s), json_number(s.eta_s),
      json_number(s.step_s), s.test_accuracy >= 0 ? json_number(s.test_accuracy) : "null", s.recoveries,
      json_string(s.detail), json_string(j.owner), j.ms_since_report, json_number(s.split.data),
      json_number(s.split.forward), json_number(s.split.backward), json_number(s.split.collective),
      json_number(s.split.optimizer), ranks, stragglers);
}

std::string group_json(const cluster::GroupView& g) {
  std::string members;
  for (auto m : g.status.members) members += fmt::format("{}{}", members.empty() ? "" : ",", m);
  return fmt::format(
      "{{\"name\":{},\"uid\":\"{}\",\"backend\":{},\"size\":{},\"state\":{},\"detail\":{},\"members\":[{}],\"owner\":{},"
      "\"ops_per_s\":{},\"bus_bandwidth\":{},\"bytes_per_s\":{},\"last_rank\":{},\"last_share\":{}}}",
      json_string(g.status.name), g.status.uid, json_string(g.status.backend), g.status.members.size(),
      json_string(g.status.state), json_string(g.status.detail), members, json_string(g.owner),
      json_number(g.ops_per_s), json_number(g.bus_bandwidth), json_number(g.bytes_per_s), g.last_rank,
      json_number(g.last_share));
}

/// What makes the cluster unhealthy now, in words (empty: healthy).
std::vector<std::string> problems(const cluster::ClusterView& v) {
  std::vector<std::string> out;
  for (const auto& e : v.events)
    if (e.ms_ago <= kRecentMs) out.push_back(fmt::format("{} {}: {}", e.what, ago(e.ms_ago), one_line(e.cause)));
  if (auto it = v.actor_states.find("RESTARTING"); it != v.actor_states.end() && it->second)
    out.push_back(fmt::format("{} actor(s) restarting", it->second));
  for (const auto& r : v.refusals)
    if (r.ms_ago <= kRefusalMs)
      out.push_back(fmt::format("refused {} ({}): {}", r.what, ago(r.ms_ago), one_line(r.cause)));
  for (const auto& j : v.jobs) {
    if (j.status.state == "failed" && j.ms_since_report <= kRecentMs)
      out.push_back(fmt::format("job {} ({}) failed: {}", j.id, j.status.name, one_line(j.status.detail)));
    if (j.status.state == "running")
      for (const auto& s : j.stragglers)
        out.push_back(fmt::format("job {} ({}) straggler: {}", j.id, j.status.name, telemetry::describe(s)));
  }
  return out;
}

Listing node_listing(const cluster::ClusterView& view) {
  Listing out;
  out.what = "nodes";
  out.cols = {{"id", "ID"},         {"state", "STATE"},     {"address", "ADDRESS"},
                                    {"hostname", "HOSTNAME"}, {"pid", "PID"},       {"hb_age", "HB_AGE", 0, true},
                                    {"cpu", "CPU", 0, true},  {"memory", "MEMORY"}, {"gpus", "GPUS"},
                                    {"workers", "WORKERS", 0, true}, {"head", ""},
                                    {"resources", "RESOURCES / DEATH CAUSE"}, {"cause", ""}};
  for (auto& n : view.nodes) {
    std::string res;
    for (auto& [k, v] : n.total) res += fmt::format("{}{}={}", res.empty() ? "" : " ", k, amount(k, v));
    if (n.shares_host_with) res += fmt::format(" (shares its host with node {})", n.shares_host_with);
    std::string gpus;
    for (const auto& g : n.load.gpus)
      gpus += fmt::format("{}{}:{}/{}", gpus.empty() ? "" : " ", g.index, percent(g.util), bytes(g.mem_used));
    const bool load = n.alive && n.load.sampled;
    Row r;
    r.cells = {std::to_string(n.id),
               n.alive ? "ALIVE" : "DEAD",
               n.address,
               n.hostname + (n.is_head ? " (head)" : ""),
               std::to_string(n.pid),
               fmt::format("{}ms", n.ms_since_heartbeat),
               load ? percent(n.load.cpu) : "-",
               load ? fmt::format("{}/{}", bytes(n.load.mem_used), bytes(n.load.mem_total)) : "-",
               gpus.empty() ? "-" : gpus,
               load ? std::to_string(n.load.workers.size()) : "-",
               n.is_head ? "true" : "false",
               n.alive ? res : one_line(n.death_cause),
               n.death_cause};
    r.raw = r.cells;
    r.raw[3] = n.hostname;
    r.json = node_json(n);
    out.rows.push_back(std::move(r));
  }
  return out;
}

Listing actor_listing(const std::vector<cluster::ActorView>& list) {
  Listing out;
  out.what = "actors";
  out.cols = {{"id", "ID"},       {"state", "STATE"}, {"class", "CLASS"},
                                    {"name", "NAME"},   {"node", "NODE"},   {"pid", "PID"},
                                    {"restarts", "RESTARTS", 0, true},      {"cpu", "CPU", 0, true},
                                    {"rss", "RSS", 0, true},                {"gpu_mem", "GPU_MEM", 0, true},
                                    {"calls_per_s", "CALLS/S", 0, true},    {"queue", "QUEUE", 0, true},
                                    {"p99_ms", "P99_MS", 0, true},          {"group", ""},      {"owner", ""},      {"resources", "RESOURCES / DEATH CAUSE"},
                                    {"cause", ""}};
  for (auto& a : list) {
    std::string res;
    for (auto& [k, v] : a.resources) res += fmt::format("{}{}={}", res.empty() ? "" : " ", k, amount(k, v));
    const bool live = a.state == "ALIVE" && a.pid;
    Row r;
    r.cells = {std::to_string(a.id),
               a.state,
               a.class_name,
               a.name.empty() ? "-" : a.name,
               std::to_string(a.node),
               a.pid ? std::to_string(a.pid) : "-",
               std::to_string(a.restarts),
               live && a.rss ? percent(a.cpu) : "-",
               live ? bytes(a.rss) : "-",
               live ? bytes(a.gpu_mem) : "-",
               live ? fmt::format("{:.0f}", a.calls_per_s) : "-",
               live ? std::to_string(a.queue) : "-",
               live && a.p99_s > 0 ? fmt::format("{:.3g}", a.p99_s * 1e3) : "-",
               std::to_string(a.placement_group),
               a.owner,
               a.state == "DEAD" || a.state == "RESTARTING" ? one_line(a.death_cause) : res,
               a.death_cause};
    r.raw = r.cells;
    r.raw[3] = a.name;
    r.json = fmt::format(
        "{{\"id\":{},\"class\":{},\"name\":{},\"state\":\"{}\",\"node\":{},\"pid\":{},\"restarts\":{},"
        "\"death_cause\":{},\"resources\":{},\"placement_group\":{},\"owner\":{},\"rss\":{},\"cpu_util\":{},"
        "\"gpu_mem\":{},\"calls\":{},\"calls_per_s\":{},\"queue\":{},\"p99_s\":{}}}",
        a.id, json_string(a.class_name), json_string(a.name), a.state, a.node, a.pid, a.restarts,
        json_string(a.death_cause), json_resources(a.resources), a.placement_group, json_string(a.owner), a.rss,
        json_number(a.cpu), a.gpu_mem, a.calls, json_number(a.calls_per_s), a.queue, json_number(a.p99_s));
    out.rows.push_back(std::move(r));
  }
  return out;
}

Listing group_listing(const cluster::ClusterView& view) {
  Listing out;
  out.what = "collective groups";
  out.cols = {{"name", "NAME"},
              {"uid", "UID"},
              {"backend", "BACKEND"},
              {"size", "SIZE", 0, true},
              {"state", "STATE"},
              {"ops_per_s", "OPS/S", 0, true},
              {"busbw", "BUSBW", 0, true},
              {"last", "LAST_RANK"},
              {"owner", ""},
              {"members", "MEMBERS (ACTOR IDS BY RANK) / WHY ABORTED"}};
  for (auto& g : view.groups) {
    std::string members;
    for (auto m : g.status.members) members += fmt::format("{}{}", members.empty() ? "" : " ", m ? std::to_string(m) : "-");
    Row r;
    r.cells = {g.status.name,
               std::to_string(g.status.uid),
               g.status.backend,
               std::to_string(g.status.members.size()),
               g.status.state,
               g.ops_per_s > 0 ? fmt::format("{:.0f}", g.ops_per_s) : "-",
               g.bus_bandwidth > 0 ? bytes(static_cast<std::uint64_t>(g.bus_bandwidth)) + "/s" : "-",
               g.last_rank >= 0 ? fmt::format("{} ({:.0f}%)", g.last_rank, g.last_share * 100) : "-",
               g.owner,
               g.status.state == "ready" ? members : one_line(g.status.detail)};
    r.raw = r.cells;
    r.json = group_json(g);
    out.rows.push_back(std::move(r));
  }
  return out;
}

Listing job_listing(const cluster::ClusterView& view) {
  Listing out;
  out.what = "jobs";
  out.cols = {{"id", "ID"},          {"name", "NAME"},          {"strategy", "STRATEGY"},
                                    {"state", "STATE"},    {"step", "STEP", 0, true}, {"loss", "LOSS", 0, true},
                                    {"samples_per_s", "SAMPLES/S", 0, true},          {"step_ms", "STEP_MS", 0, true},
                                    {"eta", "ETA", 0, true}, {"split", "SPLIT"},      {"owner", ""},
                                    {"stragglers", "STRAGGLERS / WHY FAILED"}};
  for (auto& j : view.jobs) {
    const auto& s = j.status;
    std::string slow;
    for (auto& g : j.stragglers) slow += (slow.empty() ? "" : "; ") + telemetry::describe(g);
    Row r;
    r.cells = {j.id,
               s.name,
               s.strategy,
               s.state,
               fmt::format("{}/{}", s.step, s.total_steps),
               fmt::format("{:.4f}", s.loss),
               fmt::format("{:.0f}", s.samples_per_s),
               fmt::format("{:.2f}", s.step_s * 1e3),
               s.state == "running" ? duration(s.eta_s) : "-",
               split_text(s.split),
               j.owner,
               s.state == "failed" ? one_line(s.detail) : (slow.empty() ? "-" : slow)};
    r.raw = r.cells;
    r.raw[4] = std::to_string(s.step);
    r.json = job_json(j);
    out.rows.push_back(std::move(r));
  }
  return out;
}

}  // namespace troupe::cli
