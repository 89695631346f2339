// The head's Prometheus endpoint: the text format over a small HTTP server
// on its strand (see head.hpp, `troupe-daemon --metrics-port`).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include "runtime/cluster/head.hpp"
#include "runtime/net/within.hpp"

namespace troupe::cluster {

using clock = std::chrono::steady_clock;

// ---- Prometheus text format over HTTP ---------------------------------------
// Written by hand: the format is a few lines of text per metric, and
// prometheus-cpp's core would bring a registry of its own to keep in step
// with the head's tables (and its pull server, which we do not want, is the
// part that serves HTTP). Names: troupe_ prefix, base units (seconds, bytes,
// ratios), _total on counters; labels name nodes, jobs and groups, never calls.

namespace {
std::string label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

struct Metrics {
  std::string text;
  void head(const char* name, const char* type, const char* help) {
    text += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(const char* name, const std::string& labels, double v) {
    text += labels.empty() ? fmt::format("{} {}\n", name, v) : fmt::format("{}{{{}}} {}\n", name, labels, v);
  }
  // A family of one unlabelled series.
  void single(const char* name, const char* type, const char* help, double v) {
    head(name, type, help);
    sample(name, "", v);
  }
};
}  // namespace

std::string Head::metrics_text() const {
  Metrics m;
  const auto now = clock::now();
  m.single("troupe_head_uptime_seconds", "gauge", "Seconds since the head started.",
           std::chrono::duration<double>(now - started_).count());
  std::size_t alive = 0;
  for (const auto& [id, n] : nodes_) alive += n.slot.alive;
  m.head("troupe_nodes", "gauge", "Nodes by state.");
  m.sample("troupe_nodes", "state=\"alive\"", static_cast<double>(alive));
  m.sample("troupe_nodes", "state=\"dead\"", static_cast<double>(nodes_.size() - alive));
  auto node_label = [](std::uint64_t id, const NodeRecord& n) {
    return fmt::format("node=\"{}\",host=\"{}\"", id, label(n.hostname));
  };
  m.head("troupe_node_resource_total", "gauge", "What a live node offers, by resource (memory in bytes).");
  for (const auto& [id, n] : nodes_)
    if (n.slot.alive)
      for (const auto& [k, v] : n.slot.total)
        m.sample("troupe_node_resource_total", fmt::format("{},resource=\"{}\"", node_label(id, n), label(k)), v);
  m.head("troupe_node_resource_used", "gauge", "What actors and placement groups hold on a live node.");
  for (const auto& [id, n] : nodes_)
    if (n.slot.alive)
      for (const auto& [k, v] : n.slot.total) {
        auto u = n.slot.used.find(k);
        m.sample("troupe_node_resource_used", fmt::format("{},resource=\"{}\"", node_label(id, n), label(k)),
                 u == n.slot.used.end() ? 0.0 : u->second);
      }
  // Each family's lines in one block, as the format asks.
  auto per_node = [&](const char* name, const char* help, auto value) {
    m.head(name, "gauge", help);
    for (const auto& [id, n] : nodes_)
      if (n.slot.alive && n.load.sampled) m.sample(name, node_label(id, n), value(n.load));
  };
  per_node("troupe_node_cpu_utilization_ratio", "The node's host CPUs in use, 0 to 1.",
           [](const NodeLoad& l) { return l.cpu; });
  per_node("troupe_node_memory_used_bytes", "The node's host memory in use (total less available).",
           [](const NodeLoad& l) { return static_cast<double>(l.mem_used); });
  per_node("troupe_node_memory_total_bytes", "The node's host memory.",
           [](const NodeLoad& l) { return static_cast<double>(l.mem_total); });
  per_node("troupe_node_worker_memory_rss_bytes", "Resident memory of the node's worker processes, summed.",
           [](const NodeLoad& l) {
             double rss = 0;
             for (const auto& w : l.workers) rss += static_cast<double>(w.rss);
             return rss;
           });
  auto per_gpu = [&](const char* name, const char* help, auto value) {
    m.head(name, "gauge", help);
    for (const auto& [id, n] : nodes_) {
      if (!n.slot.alive) continue;
      for (const auto& g : n.load.gpus)
        m.sample(name, fmt::format("{},gpu=\"{}\"", node_label(id, n), g.index), value(g));
    }
  };
  per_gpu("troupe_gpu_utilization_ratio", "A GPU's use (NVML), 0 to 1.", [](const GpuLoad& g) { return g.util; });
  per_gpu("troupe_gpu_memory_used_bytes", "A GPU's memory in use (NVML).",
          [](const GpuLoad& g) { return static_cast<double>(g.mem_used); });
  per_gpu("troupe_gpu_memory_total_bytes", "A GPU's memory (NVML).",
          [](const GpuLoad& g) { return static_cast<double>(g.mem_total); });
  std::map<std::string, unsigned> states{{"PENDING", 0}, {"ALIVE", 0}, {"RESTARTING", 0}, {"DEAD", 0}};
  for (const auto& [id, a] : actors_) ++states[state_name(static_cast<proto::ActorState>(a.state))];
  m.head("troupe_actors", "gauge", "Process actors in the head's directory, by state (dead ones: the latest 1000).");
  for (const auto& [st, c] : states) m.sample("troupe_actors", fmt::format("state=\"{}\"", st), c);
  // The head's own counts: a family of one series each.
  const struct {
    const char *name, *type, *help;
    double value;
  } counts[] = {
      {"troupe_placement_groups", "gauge", "Placement groups holding reservations.",
       static_cast<double>(groups_.size())},
      {"troupe_node_failures_total", "counter", "Nodes declared dead.", static_cast<double>(node_failures_)},
      {"troupe_actor_failures_total", "counter", "Worker processes that exited while their actor was wanted.",
       static_cast<double>(actor_failures_)},
      {"troupe_placement_refusals_total", "counter", "Actor and placement group requests refused as infeasible.",
       static_cast<double>(refusals_total_)},
      {"troupe_head_dropped_peers_total", "counter", "Connections dropped for a failed handshake or a bad frame.",
       static_cast<double>(dropped_.load())},
      {"troupe_head_http_requests_total", "counter", "Requests to this HTTP endpoint.",
       static_cast<double>(http_requests_)},
      {"troupe_actor_calls_total", "counter", "Calls the cluster's process actors ran (from their workers' counters).",
       static_cast<double>(calls_total_)},
  };
  for (const auto& c : counts) m.single(c.name, c.type, c.help, c.value);
  // Per collective group (rank 0's counters; a group formed again under its
  // name starts them again, which Prometheus reads as a counter reset).
  const std::pair<const char*, const char*> group_counters[] = {
      {"troupe_collective_operations_total", "Operations a collective group ran (its rank 0)."},
      {"troupe_collective_bytes_total", "Payload bytes of a collective group's operations (its rank 0)."},
      {"troupe_collective_seconds_total", "Seconds its rank 0 spent in a collective group's operations."}};
  for (int k = 0; k < 3; ++k) {
    m.head(group_counters[k].first, "counter", group_counters[k].second);
    for (const auto& [key, g] : coll_groups_) {
      auto zero = g.ranks.find(0);
      if (zero == g.ranks.end()) continue;
      const auto& z = zero->second.last;
      const double v = k == 0 ? static_cast<double>(z.ops) : k == 1 ? static_cast<double>(z.bytes) : z.busy_s;
      m.sample(group_counters[k].first,
               fmt::format("group=\"{}\",backend=\"{}\",driver=\"{}\"", label(g.status.name), label(g.status.backend),
                           key.first),
               v);
    }
  }
  std::map<std::string, unsigned> gstates{{"ready", 0}, {"aborted", 0}};
  for (const auto& [k, g] : coll_groups_) ++gstates[g.status.state];
  m.head("troupe_collective_groups", "gauge", "Collective groups drivers reported, by state.");
  for (const auto& [st, c] : gstates) m.sample("troupe_collective_groups", fmt::format("state=\"{}\"", label(st)), c);
  // Training jobs: one series per job (a handful), none per step or call.
  struct JobMetric {
    const char* name;
    const char* type;
    const char* help;
    double (*get)(const JobRecord&);
  };
  static const JobMetric job_metrics[] = {
      {"troupe_job_running", "gauge", "1 while the job runs, else 0.",
       [](const JobRecord& j) { return j.status.state == "running" ? 1.0 : 0.0; }},
      {"troupe_job_step", "gauge", "The job's last reported step.",
       [](const JobRecord& j) { return static_cast<double>(j.status.step); }},
      {"troupe_job_steps", "gauge", "The job's planned steps.",
       [](const JobRecord& j) { return static_cast<double>(j.status.total_steps); }},
      {"troupe_job_loss", "gauge", "The global batch's mean loss at the last reported step.",
       [](const JobRecord& j) { return static_cast<double>(j.status.loss); }},
      {"troupe_job_samples_per_second", "gauge", "Examples trained per second over the run.",
       [](const JobRecord& j) { return j.status.samples_per_s; }},
      {"troupe_job_step_seconds", "gauge", "Seconds per step over the last chunk.",
       [](const JobRecord& j) { return j.status.step_s; }},
      {"troupe_job_eta_seconds", "gauge", "Seconds left at the current pace.",
       [](const JobRecord& j) { return j.status.eta_s; }},
      {"troupe_job_recoveries_total", "counter", "Worker failures the job recovered from.",
       [](const JobRecord& j) { return static_cast<double>(j.status.recoveries); }},
      {"troupe_job_stragglers", "gauge", "Ranks slower than their peers (see troupe jobs).",
       [](const JobRecord& j) { return static_cast<double>(j.stragglers.named().size()); }},
  };
  auto job_label = [](const std::pair<std::uint64_t, std::uint64_t>& key, const JobRecord& j) {
    return fmt::format("job=\"{}.{}\",name=\"{}\"", key.first, key.second, label(j.status.name));
  };
  for (const auto& jm : job_metrics) {
    m.head(jm.name, jm.type, jm.help);
    for (const auto& [key, j] : jobs_) m.sample(jm.name, job_label(key, j), jm.get(j));
  }
  m.head("troupe_job_phase_seconds", "gauge", "Seconds per step by phase, the mean over the ranks.");
  for (const auto& [key, j] : jobs_) {
    const auto& s = j.status.split;
    const std::pair<const char*, double> phases[] = {{"data", s.data},         {"forward", s.forward},
                                                     {"backward", s.backward}, {"collective", s.collective},
                                                     {"optimizer", s.optimizer}};
    for (const auto& [ph, v] : phases)
      m.sample("troupe_job_phase_seconds", fmt::format("{},phase=\"{}\"", job_label(key, j), ph), v);
  }
  return m.text;
}

asio::awaitable<void> Head::metrics_loop() {
  auto self = shared_from_this();
  auto live = std::make_shared<std::size_t>(0);
  while (!stopped_) {
    auto sock = co_await metrics_acceptor_->async_accept(asio::use_awaitable);
    if (*live >= 16) continue;  // at most 16 at once: the rest are closed unanswered
    ++*live;
    asio::co_spawn(strand_, serve_http(std::move(sock)), [live, self](std::exception_ptr) { --*live; });
  }
}

asio::awaitable<void> Head::serve_http(asio::ip::tcp::socket sock) {
  // One request per connection, read within 5 s and 8 KiB; anything else is
  // answered with its status and closed.
  asio::streambuf buf(8192);
  std::string status = "200 OK", body, type = "text/plain; version=0.0.4; charset=utf-8";
  bool head_only = false;
  try {
    co_await net::within(asio::async_read_until(sock, buf, "\r\n\r\n", asio::use_awaitable), std::chrono::seconds(5),
                         "http request");
    std::string req(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
    const auto line = req.substr(0, req.find("\r\n"));
    const auto sp1 = line.find(' '), sp2 = line.rfind(' ');
    const std::string method = sp1 == std::string::npos ? "" : line.substr(0, sp1);
    const std::string path = sp1 == std::string::npos || sp2 <= sp1 ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
    ++http_requests_;
    if (method.empty() || path.empty() || !line.substr(sp2 + 1).starts_with("HTTP/1.")) {
      status = "400 Bad Request", body = "not an HTTP/1 request line\n";
    } else if (method != "GET" && method != "HEAD") {
      status = "405 Method Not Allowed", body = "GET /metrics\n";
    } else if (path == "/metrics" || path.starts_with("/metrics?")) {
      head_only = method == "HEAD";
      body = metrics_text();
    } else if (path == "/") {
      body = "troupe head: Prometheus metrics at /metrics\n";
    } else {
      status = "404 Not Found", body = "no such page; metrics are at /metrics\n";
    }
  } catch (const std::exception&) {
    status = "400 Bad Request", body = "request too large, malformed or too slow\n";
  }
  const std::string head = fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", status, type, body.size());
  boost::system::error_code ec;
  std::string out = head_only ? head : head + body;
  co_await asio::async_write(sock, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
  sock.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  sock.close(ec);
}

}  // namespace troupe::cluster
