#include "tools/cli/cluster_commands.hpp"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "runtime/cluster/connect.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/auth.hpp"
#include "runtime/trace.hpp"
#include "tools/cli/listings.hpp"
#include "tools/cli/table.hpp"

namespace troupe::cli {

namespace {

cluster::ClusterView fetch(const ListFlags& f) {
  auto addr = cluster::resolve_address(f.address, f.token_file);
  return cluster::query_status(addr, net::resolve_token(f.token, f.token_file));
}

}  // namespace

int status_command(int argc, char** argv) {
  auto f = parse_flags(argc, argv, false);
  auto view = fetch(f);
  std::size_t alive = 0;
  cluster::ResourceMap total, used;
  for (auto& n : view.nodes) {
    if (!n.alive) continue;
    ++alive;
    for (auto& [k, v] : n.total) total[k] += v;
    for (auto& [k, v] : n.used) used[k] += v;
  }
  const auto issues = problems(view);
  const int code = issues.empty() ? 0 : 3;
  if (f.json) {
    std::string nodes, actors, events, refusals, jobs, groups, probs;
    for (auto& n : view.nodes) nodes += (nodes.empty() ? "" : ",") + node_json(n);
    for (auto& [state, n] : view.actor_states)
      actors += fmt::format("{}{}:{}", actors.empty() ? "" : ",", json_string(state), n);
    auto event_json = [](const cluster::EventView& e) {
      return fmt::format("{{\"ms_ago\":{},\"what\":{},\"cause\":{}}}", e.ms_ago, json_string(e.what),
                         json_string(e.cause));
    };
    for (auto& e : view.events) events += (events.empty() ? "" : ",") + event_json(e);
    for (auto& e : view.refusals) refusals += (refusals.empty() ? "" : ",") + event_json(e);
    for (auto& j : view.jobs) jobs += (jobs.empty() ? "" : ",") + job_json(j);
    for (auto& g : view.groups) groups += (groups.empty() ? "" : ",") + group_json(g);
    for (auto& p : issues) probs += (probs.empty() ? "" : ",") + json_string(p);
    fmt::print("{{\"head\":{},\"uptime_ms\":{},\"healthy\":{},\"problems\":[{}],\"nodes_alive\":{},\"nodes_dead\":{},"
               "\"resources_total\":{},\"resources_used\":{},\"actors\":{{{}}},\"pending\":{},\"placement_groups\":{},"
               "\"failures\":[{}],\"failures_dropped\":{},\"refusals\":[{}],\"jobs\":[{}],\"groups\":[{}],"
               "\"nodes\":[{}]}}\n",
               json_string(view.head_address), view.uptime_ms, issues.empty() ? "true" : "false", probs, alive,
               view.nodes.size() - alive, json_resources(total), json_resources(used), actors, view.pending,
               view.placement_groups, events, view.events_dropped, refusals, jobs, groups, nodes);
    return code;
  }
  fmt::print("Cluster at {}, up {}: {}\n", view.head_address, duration(view.uptime_ms / 1000.0),
             issues.empty() ? "healthy" : "UNHEALTHY");
  fmt::print("Nodes\n  {} alive\n  {} dead\n", alive, view.nodes.size() - alive);
  for (auto& n : view.nodes)
    if (!n.alive) fmt::print("    node {} ({}): {}\n", n.id, n.address, one_line(n.death_cause));
  fmt::print("Resources (used / total, alive nodes)\n");
  for (auto& [k, v] : total) fmt::print("  {:>10} / {:<10} {}\n", amount(k, used[k]), amount(k, v), k);
  for (auto& n : view.nodes) {
    if (!n.alive) continue;
    std::string line = fmt::format("  node {}{}: ", n.id, n.is_head ? " (head)" : "");
    std::string res;
    for (auto& [k, v] : n.total) {
      auto u = n.used.find(k);
      res += fmt::format("{}{} {}/{}", res.empty() ? "" : ", ", k, amount(k, u == n.used.end() ? 0 : u->second),
                         amount(k, v));
    }
    for (std::size_t g = 0; g < n.gpu_ids.size() && g < n.gpu_used.size(); ++g)
      res += fmt::format(", cuda:{} {:.2f} held", n.gpu_ids[g], n.gpu_used[g]);
    if (n.load.sampled && n.load.mem_total)
      res += fmt::format("; CPU busy {}, memory {} of {}", percent(n.load.cpu), bytes(n.load.mem_used),
                         bytes(n.load.mem_total));
    for (const auto& g : n.load.gpus)
      res += fmt::format("; gpu {} busy {}, {} of {}", g.index, percent(g.util), bytes(g.mem_used), bytes(g.mem_total));
    fmt::print("{}{}\n", line, res);
  }
  fmt::print("Actors\n");
  if (view.actor_states.empty()) fmt::print("  none placed yet\n");
  for (auto& [state, n] : view.actor_states) fmt::print("  {} {}\n", n, state);
  if (view.pending) fmt::print("  ({} waiting for their worker to start)\n", view.pending);
  fmt::print("Placement groups\n  {}\n", view.placement_groups);
  if (!view.refusals.empty()) {
    fmt::print("Refused as infeasible (latest {})\n", view.refusals.size());
    for (auto& r : view.refusals) fmt::print("  {:>12}  {}: {}\n", ago(r.ms_ago), r.what, one_line(r.cause));
  }
  if (!view.events.empty()) {
    fmt::print("Recent failures (latest {}{})\n", view.events.size(),
               view.events_dropped ? fmt::format("; {} older ones dropped", view.events_dropped) : "");
    for (auto& e : view.events) fmt::print("  {:>12}  {}: {}\n", ago(e.ms_ago), e.what, one_line(e.cause));
  }
  if (!view.jobs.empty()) {
    fmt::print("Training jobs\n");
    for (auto& j : view.jobs) {
      const auto& s = j.status;
      fmt::print("  {} {} ({}) {}: step {}/{}, loss {:.4f}, {:.0f} samples/s{}\n", j.id, s.name, s.strategy, s.state,
                 s.step, s.total_steps, s.loss, s.samples_per_s,
                 s.state == "running" ? fmt::format(", ETA {}", duration(s.eta_s)) : std::string());
      for (auto& g : j.stragglers) fmt::print("    straggler: {}\n", telemetry::describe(g));
    }
  }
  if (!view.groups.empty()) {
    std::size_t ready = 0;
    for (auto& g : view.groups) ready += g.status.state == "ready";
    fmt::print("Collective groups\n  {} ready, {} aborted\n", ready, view.groups.size() - ready);
  }
  if (!issues.empty()) {
    fmt::print("Problems (exit code 3)\n");
    for (auto& p : issues) fmt::print("  - {}\n", p);
  }
  return code;
}

namespace {
// A listing of what the status snapshot holds: filtered, limited, printed.
int view_listing(int argc, char** argv, Listing (*build)(const cluster::ClusterView&)) {
  auto f = parse_flags(argc, argv, true);
  const auto l = build(fetch(f));
  print_rows(l.cols, l.rows, f, l.what);
  return 0;
}
}  // namespace

int nodes_command(int argc, char** argv) { return view_listing(argc, argv, &node_listing); }
int groups_command(int argc, char** argv) { return view_listing(argc, argv, &group_listing); }
int jobs_command(int argc, char** argv) { return view_listing(argc, argv, &job_listing); }

int actors_command(int argc, char** argv) {
  auto f = parse_flags(argc, argv, true);
  // The address first (as status and nodes): with no cluster, that is what to say.
  auto addr = cluster::resolve_address(f.address, f.token_file);
  const auto l = actor_listing(cluster::query_actors(addr, net::resolve_token(f.token, f.token_file)));
  print_rows(l.cols, l.rows, f, l.what);
  return 0;
}

int logs_command(int argc, char** argv) {
  std::vector<char*> rest;
  std::uint64_t actor = 0, node = 0;
  bool follow = false, err = false, target = false;
  std::uint32_t tail = 100;
  auto number = [](const std::string& what, const std::string& v, std::uint64_t hi) {
    char* end = nullptr;
    const auto n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || n > hi || v[0] == '-')
      throw UsageError(fmt::format("{} wants a number, got '{}'", what, v));
    return n;
  };
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-f" || a == "--follow") {
      follow = true;
    } else if (a == "--err") {
      err = true;
    } else if (a == "--tail") {
      if (i + 1 >= argc) throw UsageError("--tail needs a number of lines (0: the whole file)");
      tail = static_cast<std::uint32_t>(number("--tail", argv[++i], 10'000'000));
    } else if (!a.empty() && a[0] != '-' && !target) {
      target = true;
      if (a.rfind("node:", 0) == 0) node = number("node:N", a.substr(5), UINT64_MAX);
      else actor = number("ACTOR (an actor id, or node:N)", a, UINT64_MAX);
      if ((node == 0 && actor == 0)) throw UsageError("ids start at 1 (troupe actors / troupe nodes list them)");
    } else if (a == "--address" || a == "--token" || a == "--token-file") {
      rest.push_back(argv[i]);
      if (i + 1 < argc) rest.push_back(argv[++i]);
    } else {
      throw UsageError(fmt::format("unknown option '{}' (troupe logs ACTOR|node:N [-f] [--tail N] [--err])", a));
    }
  }
  if (!target) throw UsageError("which logs? troupe logs ACTOR_ID, or node:N for a node's log files");
  auto f = parse_flags(static_cast<int>(rest.size()), rest.data(), false);
  auto addr = cluster::resolve_address(f.address, f.token_file);
  const std::string token = net::resolve_token(f.token, f.token_file);
  std::signal(SIGINT, [](int) { std::_Exit(0); });  // -f ends with Ctrl-C: the head then stops the reading
  cluster::stream_logs(addr, token, actor, node, err, tail, follow, [](const std::string& d) {
    std::fwrite(d.data(), 1, d.size(), stdout);
    std::fflush(stdout);
  });
  return 0;
}

int trace_command(int argc, char** argv) {
  std::vector<char*> rest;
  double seconds = 5;
  std::string file;
  constexpr const char* kUsage = "troupe trace [--seconds N] [-o FILE]";
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    std::string inline_value;  // --seconds=N, -o=FILE
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = a.substr(eq + 1);
      a.erase(eq);
    }
    auto value = [&](const char* what) -> std::string {
      if (!inline_value.empty()) return inline_value;
      if (i + 1 >= argc) throw UsageError(fmt::format("{} needs {} ({})", a, what, kUsage));
      return argv[++i];
    };
    if (a == "--seconds") {
      const std::string v = value("a number");
      char* end = nullptr;
      seconds = std::strtod(v.c_str(), &end);
      if (v.empty() || *end || !(seconds >= 0.001 && seconds <= 600))
        throw UsageError(fmt::format("--seconds wants 0.001 to 600, got '{}'", v));
    } else if (a == "-o" || a == "--output") {
      file = value("a file name");
    } else if (a == "--address" || a == "--token" || a == "--token-file") {
      rest.push_back(argv[i]);
      if (i + 1 < argc) rest.push_back(argv[++i]);
    } else if (a == "--json") {
      rest.push_back(argv[i]);
    } else {
      throw UsageError(fmt::format("{} '{}' ({})", a.rfind('-', 0) == 0 ? "unknown option" : "unexpected argument",
                                   argv[i], kUsage));
    }
  }
  auto f = parse_flags(static_cast<int>(rest.size()), rest.data(), false);
  auto addr = cluster::resolve_address(f.address, f.token_file);
  const std::string token = net::resolve_token(f.token, f.token_file);
  if (file.empty()) {
    const std::time_t t = std::time(nullptr);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&t));
    file = fmt::format("troupe-trace-{}.json", stamp);
  }
  // Checked before the cluster records for N seconds, not after.
  const bool existed = std::filesystem::exists(file);
  {
    std::ofstream probe(file, std::ios::app);
    if (!probe) throw UsageError(fmt::format("cannot write {}: {}", file, std::strerror(errno)));
  }
  const auto window = std::chrono::milliseconds(std::max<long long>(1, std::llround(seconds * 1000)));
  cluster::TraceResult r;
  auto drop_file = [&] {
    std::error_code ec;
    if (!existed) std::filesystem::remove(file, ec);  // no empty file left behind
  };
  try {
    r = cluster::request_trace(addr, token, window, [&](std::uint32_t drivers) {
      fmt::print(stderr, "recording {} s on {} driver(s) and their workers...\n", seconds, drivers);
    });
  } catch (...) {
    drop_file();
    throw;
  }
  if (r.processes.empty()) {
    drop_file();
    std::string why;
    for (auto& n : r.notes) why += "\n  " + n;
    throw Error(fmt::format("no process sent a trace{}", why.empty() ? std::string() : ":" + why));
  }
  trace::ChromeStats st;
  const std::string text = trace::to_chrome(r.processes, r.notes, &st);
  {
    std::ofstream out(file, std::ios::trunc);
    out << text;
    if (!out) throw Error(fmt::format("writing {} failed: {}", file, std::strerror(errno)));
  }
  if (f.json) {
    std::string notes;
    for (auto& n : r.notes) notes += (notes.empty() ? "" : ",") + json_string(n);
    fmt::print("{{\"file\":{},\"processes\":{},\"spans\":{},\"flows\":{},\"dropped\":{},\"sampled_out\":{},"
               "\"sampling\":{},\"notes\":[{}]}}\n",
               json_string(file), r.processes.size(), st.events, st.flows, st.dropped, st.sampled_out, st.sampling,
               notes);
    return 0;
  }
  fmt::print("wrote {}: {} processes, {} spans, {} calls linked to where they were sent{}{}\n", file,
             r.processes.size(), st.events, st.flows,
             st.sampling > 1 ? fmt::format("; busy threads sampled their calls, down to 1 in {} ({} not traced)",
                                           st.sampling, st.sampled_out)
                             : std::string(),
             st.dropped ? fmt::format("; {} events dropped (a thread's buffer holds {})", st.dropped,
                                      trace::kThreadEvents)
                        : std::string());
  for (auto& n : r.notes) fmt::print("  note: {}\n", n);
  fmt::print("open it in https://ui.perfetto.dev or chrome://tracing\n");
  return 0;
}

int stop_command(int argc, char** argv) {
  auto f = parse_flags(argc, argv, false);
  auto addr = cluster::resolve_address(f.address, f.token_file);
  const std::string token = net::resolve_token(f.token, f.token_file);
  const std::string said = cluster::request_stop(addr, token, "troupe stop");
  // Done when the head no longer answers (it exits after its nodes were told).
  bool gone = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!gone && std::chrono::steady_clock::now() < deadline) {
    try {
      cluster::query_status(addr, token, std::chrono::milliseconds(500));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } catch (const std::exception&) {
      gone = true;
    }
  }
  if (f.json) fmt::print("{{\"stopping\":{},\"stopped\":{}}}\n", json_string(said), gone ? "true" : "false");
  else fmt::print("{}\n{}\n", said, gone ? "stopped" : "the head still answers after 10 s");
  return gone ? 0 : 1;
}

}  // namespace troupe::cli
