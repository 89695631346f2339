// troupe: the command-line front end.
//   troupe version        the version and build configuration
//   troupe info           what this machine offers troupe (threads, GPUs)
//   troupe status|nodes|actors|groups|jobs   what the cluster head knows (tables or --json)
//   troupe stop           stops the cluster
#include <cstring>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "runtime/device.hpp"
#include "runtime/errors.hpp"
#include "runtime/init.hpp"
#include "tools/cli/cluster_commands.hpp"
#include "tools/cli/run_command.hpp"
#include "tools/cli/schedule_command.hpp"
#include "tools/cli/top_command.hpp"
#include "trainers/topology.hpp"
#include "tools/cli/build_info.hpp"

namespace {

void usage(std::FILE* out) {
  fmt::print(out,
             "usage: troupe COMMAND\n"
             "commands:\n"
             "  version   print the version and build configuration\n"
             "  info      print what this machine offers (CPU threads, GPUs)\n"
             "  status    cluster summary: nodes, resources, failures, jobs; exit 3 when unhealthy  [--json]\n"
             "  nodes     one row per node (CPU, memory, GPUs, workers)      [--filter K=V] [--limit N] [--json]\n"
             "  actors    one row per actor the head placed (dead too)       [--filter K=V] [--limit N] [--json]\n"
             "  groups    one row per collective group drivers formed        [--filter K=V] [--limit N] [--json]\n"
             "  jobs      one row per training job: step, loss, speed, split, stragglers  [--filter ...] [--json]\n"
             "  top       a live view: nodes, actors, groups, jobs (q quit, 1-4 panes, s sort, / filter)\n"
             "            troupe top [--pane nodes|actors|groups|jobs] [--interval S] [--once]\n"
             "  logs      a worker's output, captured by its node's daemon: troupe logs ACTOR [-f] [--tail N] [--err],\n"
             "            or troupe logs node:N for a node's log files\n"
             "  trace     a Chrome trace of the next N seconds of every driver and worker: actor calls (linked\n"
             "            to where they were sent), collective operations, training steps\n"
             "            troupe trace [--seconds N (5)] [-o FILE (troupe-trace-TIME.json)] [--json]\n"
             "  stop      stops the cluster: its node daemons, their workers, the head\n"
             "            (every cluster command: --address HOST:PORT, else $TROUPE_ADDRESS, else the local\n"
             "             head; --token / --token-file, else $TROUPE_TOKEN, else ~/.troupe/cluster.token)\n"
             "  run       train from a topology file (TOML): progress, metrics, plot\n"
             "            troupe run FILE.toml [--address A] [--token-file F] [--out DIR] [--epochs N] [--no-resume] [--quiet] [--trace F]\n"
             "  schedule  a pipeline schedule checked before launch: instruction lists, bubble, memory\n"
             "            troupe schedule gpipe|1f1b|interleaved|zb-h1 --stages K --microbatches M [--virtual V] [--hybrid]\n"
             "            troupe schedule --file FILE   (one line of actions per stage)\n"
             "  help      this text\n");
}

int info() {
  const auto& dev = troupe::devices();
  fmt::print("cpu threads : {}\n", std::thread::hardware_concurrency());
  fmt::print("cuda build  : {}\n", dev.cuda_built ? "yes" : "no");
  fmt::print("gpus        : {}\n", dev.status);
  for (const auto& g : dev.gpus)
    fmt::print("  cuda:{}  {}  {:.1f} GiB  sm_{}{}\n", g.index, g.name, g.memory_bytes / double(1ull << 30),
               g.compute_major, g.compute_minor);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // `troupe run` starts process actors: they re-run this binary as their worker.
  if (argc >= 2 && std::strcmp(argv[1], "--troupe-worker") == 0) troupe::init(argc, argv);
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    usage(stdout);
    return 0;
  }
  if (cmd == "version" || cmd == "--version") {
    fmt::print("troupe {}\n{}\n", TROUPE_VERSION, TROUPE_BUILD_CONFIG);
    return 0;
  }
  if (cmd == "info") return info();
  // `troupe COMMAND --help`: that command's line of the usage.
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") != 0 && std::strcmp(argv[i], "-h") != 0) continue;
    const char* flags = nullptr;
    if (cmd == "run") flags = "FILE.toml [--address A] [--token T | --token-file F] [--out DIR] [--epochs N] [--no-resume] [--quiet] [--trace FILE]";
    else if (cmd == "schedule")
      flags = "gpipe|1f1b|interleaved|zb-h1 --stages K --microbatches M [--virtual V] [--hybrid] [--quiet], or --file FILE";
    else if (cmd == "logs")
      flags = "ACTOR_ID | node:N [-f|--follow] [--tail N (100; 0: all)] [--err] [--address HOST:PORT] [--token-file F]";
    else if (cmd == "top")
      flags = "[--pane nodes|actors|groups|jobs] [--interval SECONDS] [--once] [--address HOST:PORT] [--token-file F]";
    else if (cmd == "trace")
      flags = "[--seconds N (5)] [-o FILE] [--address HOST:PORT] [--token T | --token-file F] [--json]";
    else if (cmd == "status" || cmd == "stop")
      flags = "[--address HOST:PORT] [--token T | --token-file F] [--json]";
    else if (cmd == "nodes" || cmd == "actors" || cmd == "groups" || cmd == "jobs")
      flags = "[--filter KEY=VALUE | KEY!=VALUE]... [--limit N (default 100, 0: all)] [--address HOST:PORT] "
              "[--token T | --token-file F] [--json]";
    if (!flags) break;
    fmt::print("usage: troupe {} {}\n(troupe help: every command)\n", cmd, flags);
    return 0;
  }
  try {
    if (cmd == "status") return troupe::cli::status_command(argc - 2, argv + 2);
    if (cmd == "nodes") return troupe::cli::nodes_command(argc - 2, argv + 2);
    if (cmd == "actors") return troupe::cli::actors_command(argc - 2, argv + 2);
    if (cmd == "groups") return troupe::cli::groups_command(argc - 2, argv + 2);
    if (cmd == "jobs") return troupe::cli::jobs_command(argc - 2, argv + 2);
    if (cmd == "stop") return troupe::cli::stop_command(argc - 2, argv + 2);
    if (cmd == "top") return troupe::cli::top_command(argc - 2, argv + 2);
    if (cmd == "logs") return troupe::cli::logs_command(argc - 2, argv + 2);
    if (cmd == "trace") return troupe::cli::trace_command(argc - 2, argv + 2);
    if (cmd == "run") return troupe::cli::run_command(argc - 1, argv + 1);
    if (cmd == "schedule") return troupe::cli::schedule_command(argc - 1, argv + 1);
  } catch (const troupe::dp::TopologyError& e) {
    fmt::print(stderr, "troupe {}: {}\n", cmd, e.what());
    return 2;
  } catch (const troupe::UsageError& e) {
    fmt::print(stderr, "troupe {}: {}\n", cmd, e.what());
    return 2;
  } catch (const troupe::Infeasible& e) {  // asks for what the cluster does not have: the input, as above
    fmt::print(stderr, "troupe {}: {}\n", cmd, e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "troupe {}: {}\n", cmd, e.what());
    return 1;
  }
  fmt::print(stderr, "troupe: unknown command '{}'\n", cmd);
  usage(stderr);
  return 2;
}
