// troupe-daemon: one per node; with --head it also runs the cluster head.
//
//   troupe-daemon --head [--port P] [--bind ADDR] [--token-file F] [--resources SPEC]
//   troupe-daemon --address HOST:PORT [--token T | --token-file F] [--resources SPEC]
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "runtime/cluster/address.hpp"
#include "runtime/cluster/head.hpp"
#include "runtime/cluster/node_agent.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/auth.hpp"

namespace {

namespace asio = boost::asio;
using namespace troupe;

struct Args {
  bool head = false;
  std::string address, bind = "127.0.0.1", token, token_file, resources;
  int port = 0;
  int metrics_port = -1;  // -1: no metrics endpoint
  std::string log_dir;    // "": the default; "none": workers inherit our output
  std::uint64_t log_cap = 16ull << 20;
  int heartbeat_ms = 1000, node_timeout_ms = 5000;
};

void usage(std::FILE* out) {
  fmt::print(out,
             "usage: troupe-daemon --head [--port P] [--bind ADDR] [options]\n"
             "       troupe-daemon --address HOST:PORT [options]\n"
             "options:\n"
             "  --token T           cluster token (else $TROUPE_TOKEN, else the token file)\n"
             "  --token-file F      token file (default $TROUPE_TOKEN_FILE or ~/.troupe/cluster.token);\n"
             "                      the head writes a new token there, mode 0600\n"
             "  --resources SPEC    custom resources (ssd=1,license=2), or CPU=N, memory=BYTES, GPU=N in place\n"
             "                      of what is found; daemons on one host share what is found there\n"
             "  --heartbeat-ms N    heartbeat period (default 1000)\n"
             "  --node-timeout-ms N declare a silent peer dead after N ms (default 5000)\n"
             "  --bind ADDR         head only: address to listen on (default 127.0.0.1)\n"
             "  --metrics-port P    head only: serve Prometheus metrics at http://ADDR:P/metrics (0: any free port)\n"
             "  --log-dir DIR       where workers' stdout/stderr go, capped per file (default: logs/daemon-PID beside\n"
             "                      the token file; 'none': workers write to this daemon's own output); troupe logs reads them\n"
             "  --log-cap BYTES     the size a worker's log file grows to before it rotates to .old (default 16 MiB)\n"
             "stop a cluster with `troupe stop` (the head, every node daemon, their workers)\n");
}

int number(const std::string& flag, const char* v, int lo, int hi) {
  char* end = nullptr;
  long n = v ? std::strtol(v, &end, 10) : 0;
  if (!v || *end || n < lo || n > hi)
    throw UsageError(fmt::format("{} needs a number from {} to {}, got '{}'", flag, lo, hi, v ? v : ""));
  return static_cast<int>(n);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    auto value = [&]() -> std::string {
      if (!v) throw UsageError(fmt::format("{} needs a value", f));
      ++i;
      return v;
    };
    if (f == "--head") a.head = true;
    else if (f == "--address") a.address = value();
    else if (f == "--port") a.port = number(f, v, 0, 65535), ++i;
    else if (f == "--bind") a.bind = value();
    else if (f == "--metrics-port") a.metrics_port = number(f, v, 0, 65535), ++i;
    else if (f == "--log-dir") a.log_dir = value();
    else if (f == "--log-cap") a.log_cap = static_cast<std::uint64_t>(number(f, v, 4096, 2147483647)), ++i;
    else if (f == "--token") a.token = value();
    else if (f == "--token-file") a.token_file = value();
    else if (f == "--resources") a.resources = value();
    else if (f == "--heartbeat-ms") a.heartbeat_ms = number(f, v, 10, 600000), ++i;
    else if (f == "--node-timeout-ms") a.node_timeout_ms = number(f, v, 50, 3600000), ++i;
    else throw UsageError(fmt::format("unknown option '{}'", f));
  }
  if (a.head == !a.address.empty()) throw UsageError("give exactly one of --head or --address HOST:PORT");
  if (!a.head && a.metrics_port >= 0) throw UsageError("--metrics-port is for the head (--head): it serves the cluster's metrics");
  return a;
}

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

cluster::LogConfig log_config(const Args& a) {
  cluster::LogConfig c;
  c.cap = a.log_cap;
  if (a.log_dir == "none") return c;
  if (!a.log_dir.empty()) {
    c.dir = a.log_dir;
  } else {
    const std::string tf = a.token_file.empty() ? net::default_token_path() : a.token_file;
    c.dir = (std::filesystem::path(tf).parent_path() / "logs" / fmt::format("daemon-{}", ::getpid())).string();
  }
  return c;
}

int run(const Args& a) {
  asio::io_context io;
  const auto logs = log_config(a);
  auto resources = cluster::local_node_resources(a.resources);
  int exit_code = 0;
  asio::signal_set signals(io, SIGINT, SIGTERM);

  if (a.head) {
    std::string token_file = a.token_file.empty() ? net::default_token_path() : a.token_file;
    std::string token = a.token;
    if (token.empty())
      if (const char* env = std::getenv("TROUPE_TOKEN"); env && *env) token = env;
    if (token.empty()) token = net::make_token();
    net::write_token_file(token_file, token);
    cluster::HeadOptions ho;
    ho.bind = a.bind;
    ho.port = static_cast<std::uint16_t>(a.port);
    ho.token = token;
    ho.heartbeat = std::chrono::milliseconds(a.heartbeat_ms);
    ho.node_timeout = std::chrono::milliseconds(a.node_timeout_ms);
    auto head = std::make_shared<cluster::Head>(io, ho);
    std::weak_ptr<cluster::Head> weak_head = head;
    auto launcher = std::make_shared<cluster::WorkerLauncher>(token, [weak_head](cluster::WorkerExitInfo info) {
      if (auto h = weak_head.lock()) h->local_worker_exited(std::move(info));
    });
    launcher->capture_logs(logs);
    head->add_local_node(resources, hostname(), launcher);
    if (a.metrics_port >= 0) head->serve_metrics(static_cast<std::uint16_t>(a.metrics_port));
    // `troupe stop`: the head's own workers, then the head. The nodes were
    // told first; the grace lets the answers and their stop frames leave.
    asio::steady_timer grace(io), closing(io);
    // The head closes its listeners and connections (posted on its strand);
    // 200 ms later the loop stops. Stopping it at once would abandon those
    // closes, and the connections' handlers with them.
    auto close_head = [&]() {
      head->stop();
      closing.expires_after(std::chrono::milliseconds(200));
      closing.async_wait([&](auto) { io.stop(); });
    };
    head->on_stop_request([&](const std::string&) {
      launcher->kill_all();
      signals.cancel();
      grace.expires_after(std::chrono::milliseconds(300));
      grace.async_wait([&](auto) { close_head(); });
    });
    head->start();
    const auto addr_file = cluster::address_path_beside(token_file);
    std::ofstream(addr_file) << head->address() << "\n";
    fmt::print("troupe head listening on {} (token file {}, worker logs in {})\n", head->address(), token_file,
               logs.dir.empty() ? "this daemon's output" : logs.dir);
    if (a.metrics_port >= 0)
      fmt::print("troupe head metrics at http://{}:{}/metrics\n", a.bind, head->metrics_port());
    std::fflush(stdout);
    signals.async_wait([&](auto, int) {
      launcher->kill_all();
      close_head();
    });
    io.run();
    launcher->kill_all();
    // A stopped head leaves no address for local tools to dial (another head
    // may have written its own since: only ours is removed).
    std::ifstream mine(addr_file);
    std::string written;
    if (std::getline(mine, written) && written == head->address()) std::filesystem::remove(addr_file);
    return 0;
  }

  cluster::NodeOptions no;
  no.head = cluster::parse_address(a.address);
  no.token = net::resolve_token(a.token, a.token_file);
  no.resources = resources;
  no.hostname = hostname();
  no.heartbeat = std::chrono::milliseconds(a.heartbeat_ms);
  no.logs = logs;
  no.head_timeout = std::chrono::milliseconds(a.node_timeout_ms);
  std::shared_ptr<cluster::NodeAgent> agent;
  agent = std::make_shared<cluster::NodeAgent>(
      io, no,
      [&](std::uint64_t id) {
        // What the head counts for this node: its share of the host.
        fmt::print("troupe node {} joined the head at {}: {}{}\n", id, no.head.str(),
                   cluster::format_resources(agent->granted()),
                   !agent->shares_host_with() ? std::string()
                   : no.resources.detected.count("CPU") || no.resources.detected.count("memory")
                       ? fmt::format(" (this host's own CPUs, memory and GPUs count on node {}; give this daemon "
                                     "its share with --resources CPU=N,memory=BYTES)",
                                     agent->shares_host_with())
                       : fmt::format(" (shares this host with node {}: the CPUs and memory given here are its own)",
                                     agent->shares_host_with()));
        std::fflush(stdout);
      },
      [&](const std::string& why) {
        if (agent->stopped_by_head()) {
          fmt::print("troupe-daemon: {}\n", why);  // `troupe stop`: a clean end
        } else {
          fmt::print(stderr, "troupe-daemon: {}\n", why);
          exit_code = 1;
        }
        io.stop();
      });
  agent->start();
  asio::steady_timer leave(io);
  signals.async_wait([&](auto, int) {
    agent->stop();  // tells the head it leaves (a stop, not a failure), kills its workers
    leave.expires_after(std::chrono::milliseconds(300));
    leave.async_wait([&](auto) { io.stop(); });
  });
  io.run();
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      usage(stdout);
      return 0;
    }
  try {
    return run(parse(argc, argv));
  } catch (const troupe::UsageError& e) {
    fmt::print(stderr, "troupe-daemon: {}\n", e.what());
    usage(stderr);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "troupe-daemon: {}\n", e.what());
    return 1;
  }
}
