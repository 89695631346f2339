// troupe-bench: benchmark programs that print a table (or --json).
//   troupe-bench actors [--json] [--threads N] [--sync-calls N] [--async-calls N]
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "runtime/init.hpp"
#include "tools/bench/report.hpp"

namespace {

void usage() {
  fmt::print(stderr,
             "usage: troupe-bench SUITE [--json] [options]\n"
             "suites:\n"
             "  actors   in-process actor calls, troupe next to CAF\n"
             "           --threads N  --sync-calls N  --async-calls N  --batch N\n"
             "  remote   calls to process actors, next to raw TCP and Unix-socket ping-pongs (same options);\n"
             "           with TROUPE_ADDRESS set, the actors run on that cluster's nodes and calls go over TCP\n"
             "  spawn    process actors created per second   --actors N\n"
             "  observe  what watching costs: calls with observe on vs off, the head's answers and top's frame\n"
             "           at 1,000 actors, a head's memory over many calls   --rounds N (5)  --actors N (1000)\n"
             "           --calls N (10,000,000; 0 skips it)  --sync-calls N (100,000)  --async-calls N (2,000,000)\n"
             "           (per actor and round)  --batch N\n"
             "  allreduce  float32 allreduce across worker processes, next to gloo and OpenMPI\n"
             "           --ranks N (default: 2 and 4)  --max-bytes B (default 256 MiB)\n"
             "  allreduce-gpu  float32 allreduce of GPU buffers: troupe's NCCL group next to raw NCCL (one rank),\n"
             "           and ranks sharing one GPU (cuda_local)   --ranks N (2 or 4)  --max-bytes B\n"
             "  dp       data-parallel training (MLP 784-1024-1024-10, Fashion-MNIST), troupe next to PyTorch DDP\n"
             "           --ranks N (replicas; default: 1 and 2)  --epochs N (default 3)\n"
             "           --seeds N (runs per setting, seeds 1..N, and their mean accuracy; default 1)\n"
             "  pipeline pipeline-parallel training (MLP 784-7x1024-512-10): every schedule, measured and simulated bubble,\n"
             "           next to the unsplit model in one process   --stages K (default 2)  --microbatches M\n"
             "           (default: 4 and 8)  --steps N (measured steps per row, default 12)\n"
             "  tensor-parallel  a wide MLP block (W -> 4W -> W) split over tp ranks in worker processes: rate, all-reduce\n"
             "           share, bytes per rank, bus bandwidth   --tp N (default: 1, 2 and 4)  --width W (default 4096)\n"
             "           --seconds S (default 3)\n"
             "  step     one MLP training step (784-1024-1024-10), troupe next to PyTorch\n"
             "           --threads N (default: 1 and 2)  --seconds S (default 2)\n");
}

int parse_int(const char* flag, const char* v) {
  char* end = nullptr;
  long n = v ? std::strtol(v, &end, 10) : 0;
  if (!v || *end || n <= 0 || n > 100'000'000) {
    fmt::print(stderr, "troupe-bench: {} needs a positive integer, got '{}'\n", flag, v ? v : "");
    std::exit(2);
  }
  return static_cast<int>(n);
}

}  // namespace

int main(int argc, char** argv) {
  troupe::init(argc, argv);  // process actors re-run this binary as their worker
  using namespace troupe::bench;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  std::string suite = argv[1];
  bool json = false;
  ActorBenchConfig cfg;
  AllreduceConfig ar;
  StepConfig step;
  DpConfig dpc;
  PipelineConfig ppc;
  TpConfig tpc;
  std::int64_t head_calls = -1, rounds = -1;
  bool threads_given = false, sync_given = false, async_given = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    const char* next = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--json") json = true;
    else if (a == "--threads") cfg.threads = parse_int("--threads", next), threads_given = true, ++i;
    else if (a == "--seconds") step.seconds = tpc.seconds = parse_int("--seconds", next), ++i;
    else if (a == "--tp") tpc.tp = {parse_int("--tp", next)}, ++i;
    else if (a == "--width") tpc.width = parse_int("--width", next), ++i;
    else if (a == "--sync-calls") cfg.sync_calls = parse_int("--sync-calls", next), sync_given = true, ++i;
    else if (a == "--async-calls") cfg.async_calls = parse_int("--async-calls", next), async_given = true, ++i;
    else if (a == "--batch") cfg.batch = parse_int("--batch", next), ++i;
    else if (a == "--actors") cfg.spawn_actors = parse_int("--actors", next), ++i;
    else if (a == "--ranks") {
      ar.ranks = {static_cast<std::size_t>(parse_int("--ranks", next))};
      dpc.replicas = {static_cast<int>(ar.ranks[0])};
      ++i;
    }
    else if (a == "--epochs") dpc.epochs = parse_int("--epochs", next), ++i;
    else if (a == "--stages") ppc.stages = {parse_int("--stages", next)}, ++i;
    else if (a == "--microbatches") ppc.microbatches = {parse_int("--microbatches", next)}, ++i;
    else if (a == "--steps") ppc.steps = parse_int("--steps", next), ++i;
    else if (a == "--seeds") dpc.seeds = parse_int("--seeds", next), ++i;
    else if (a == "--calls") head_calls = next && std::string(next) == "0" ? 0 : parse_int("--calls", next), ++i;
    else if (a == "--rounds") rounds = parse_int("--rounds", next), ++i;
    else if (a == "--max-bytes") {
      const auto max = static_cast<std::uint64_t>(parse_int("--max-bytes", next));
      ++i;
      std::erase_if(ar.sizes, [max](std::uint64_t b) { return b > max; });
      if (ar.sizes.empty()) ar.sizes.push_back(max / 4 * 4 ? max / 4 * 4 : 4);
    }
    else {
      fmt::print(stderr, "troupe-bench: unknown option '{}'\n", a);
      usage();
      return 2;
    }
  }
  Report report;
  report.suite = suite;
  if (suite == "actors") {
    report.rows = troupe_actor_rows(cfg);
    for (auto& r : caf_actor_rows(cfg, report.notes)) report.rows.push_back(std::move(r));
  } else if (suite == "remote") {
    report.rows = remote_rows(cfg);
    // Joined to a running cluster, the actors are started by its node
    // daemons and their workers dial back to this driver over TCP.
    const char* cluster = std::getenv("TROUPE_ADDRESS");
    report.notes.push_back(std::string(cluster && *cluster ? "troupe rows: calls over TCP to process actors that the "
                                                             "daemons of the cluster at TROUPE_ADDRESS started"
                                                           : "troupe rows: calls to process actors over a Unix socket") +
                           ", codec-encoded; "
                           "raw_tcp / raw_unix: 4-byte echo between two processes blocking in read() over loopback TCP / a "
                           "Unix socketpair (a troupe caller spins up to 100 us before it sleeps)");
  } else if (suite == "observe") {
    ObserveConfig oc;
    if (sync_given) oc.sync_calls = cfg.sync_calls;
    if (async_given) oc.async_calls = cfg.async_calls;
    oc.batch = cfg.batch;
    oc.threads = cfg.threads;
    if (cfg.spawn_actors != ActorBenchConfig{}.spawn_actors) oc.actors = cfg.spawn_actors;
    if (head_calls >= 0) oc.head_calls = head_calls;
    if (rounds > 0) oc.rounds = static_cast<int>(rounds);
    report.rows = observe_rows(oc, report.notes);
  } else if (suite == "spawn") {
    report.rows = spawn_rows(cfg);
  } else if (suite == "step") {
    if (threads_given) step.threads = {static_cast<int>(cfg.threads)};
    report.rows = step_rows(step, report.notes);
  } else if (suite == "dp") {
    if (dpc.replicas[0] > 16) {
      fmt::print(stderr, "troupe-bench: dp --ranks must be 1 to 16\n");
      return 2;
    }
    report.rows = dp_rows(dpc, report.notes);
  } else if (suite == "pipeline") {
    if (ppc.stages[0] > 8 || ppc.microbatches[0] > 1024) {
      fmt::print(stderr, "troupe-bench: pipeline --stages must be 1 to 8, --microbatches 1 to 1024\n");
      return 2;
    }
    report.rows = pipeline_rows(ppc, report.notes);
  } else if (suite == "tensor-parallel") {
    if (tpc.tp[0] > 64 || tpc.width % tpc.tp[0] != 0) {
      fmt::print(stderr, "troupe-bench: tensor-parallel --tp must be 1 to 64 and divide --width ({})\n", tpc.width);
      return 2;
    }
    report.rows = tensor_parallel_rows(tpc, report.notes);
  } else if (suite == "allreduce-gpu") {
    AllreduceConfig gpu_cfg = ar;
    std::erase_if(gpu_cfg.sizes, [](std::uint64_t b) { return b < (1u << 20); });
    report.rows = allreduce_gpu_rows(gpu_cfg, report.notes);
  } else if (suite == "allreduce") {
    if (ar.ranks[0] < 2 || ar.ranks[0] > 64) {
      fmt::print(stderr, "troupe-bench: --ranks must be 2 to 64\n");
      return 2;
    }
    report.rows = allreduce_rows(ar, report.notes);
  } else {
    fmt::print(stderr, "troupe-bench: unknown suite '{}'\n", suite);
    usage();
    return 2;
  }
  if (json)
    print_json(report);
  else
    print_table(report);
  return 0;
}
