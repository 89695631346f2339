#pragma once
// Benchmark rows: printed as an aligned table, or as one JSON line
// {"suite":"...","rows":[...]} for scripts.
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace troupe::bench {

using Value = std::variant<std::string, double, std::int64_t>;

struct Row {
  std::vector<std::pair<std::string, Value>> fields;
  Row& set(std::string key, Value v) {
    fields.emplace_back(std::move(key), std::move(v));
    return *this;
  }
};

struct Report {
  std::string suite;
  std::vector<Row> rows;
  std::vector<std::string> notes;  ///< printed under the table (skipped peers, goals)
};

void print_table(const Report& r);
void print_json(const Report& r);

/// Latency samples in microseconds -> percentile (0..100).
double percentile(std::vector<double> samples, double pct);

using Clock = std::chrono::steady_clock;
inline double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

/// What a latency/throughput pattern measured.
struct Measured {
  double calls_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
};
Row make_row(const std::string& system, const std::string& pattern, const Measured& m);

/// Times `calls` synchronous round trips of one(i), after a 10% warm-up.
template <class F>
Measured time_sync(int calls, F&& one) {
  for (int i = 0; i < calls / 10; ++i) one(i);
  std::vector<double> lat;
  lat.reserve(calls);
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i) {
    auto t0 = Clock::now();
    one(i);
    lat.push_back(micros(Clock::now() - t0));
  }
  double secs = micros(Clock::now() - start) / 1e6;
  return {calls / secs, percentile(lat, 50), percentile(lat, 99)};
}

struct ActorBenchConfig {
  int sync_calls = 20000;
  int async_calls = 200000;
  int batch = 1000;
  int nton_pairs = 4;
  unsigned threads = 0;  // 0: hardware threads
  int spawn_actors = 100;
};

struct ObserveConfig {
  int sync_calls = 100000, async_calls = 2000000, batch = 1000;  ///< per actor and round (--sync-calls, --async-calls)
  unsigned threads = 0;
  int rounds = 5;                         ///< on/off rounds, alternated
  int actors = 1000;                      ///< in the head's directory for its snapshot
  std::int64_t head_calls = 10'000'000;   ///< calls made while the head's memory is watched (0: skip)
};
std::vector<Row> observe_rows(const ObserveConfig& cfg, std::vector<std::string>& notes);

/// Each returns the four pattern rows for its system (or none, with a note).
std::vector<Row> troupe_actor_rows(const ActorBenchConfig& cfg);
std::vector<Row> caf_actor_rows(const ActorBenchConfig& cfg, std::vector<std::string>& notes);
/// Process actors over a socket, next to a raw TCP ping-pong (remote.cpp).
std::vector<Row> remote_rows(const ActorBenchConfig& cfg);
std::vector<Row> spawn_rows(const ActorBenchConfig& cfg);

struct AllreduceConfig {
  std::vector<std::size_t> ranks{2, 4};
  std::vector<std::uint64_t> sizes{4096, 65536, 1u << 20, 16u << 20, 64u << 20, 256u << 20};
};
/// Allreduce across worker processes, next to gloo and OpenMPI (allreduce.cpp).
std::vector<Row> allreduce_rows(const AllreduceConfig& cfg, std::vector<std::string>& notes);
/// Allreduce of device buffers on one GPU: troupe's NCCL group next to raw
/// NCCL, and the device-local path for ranks sharing the GPU (allreduce_gpu.cpp).
std::vector<Row> allreduce_gpu_rows(const AllreduceConfig& cfg, std::vector<std::string>& notes);

/// One training step (forward, backward, SGD) of an MLP, troupe next to PyTorch.
struct StepConfig {
  std::vector<int> threads{1, 2};
  std::vector<std::int64_t> gpu_batches{128, 1024, 8192};
  double seconds = 2.0;  ///< per row, after warm-up
};
std::vector<Row> step_rows(const StepConfig& cfg, std::vector<std::string>& notes);

/// Data-parallel training, troupe next to PyTorch DDP (dp.cpp).
struct DpConfig {
  std::vector<int> replicas{1, 2};
  std::int64_t epochs = 3;
  int seeds = 1;  ///< runs per setting, seeds 1..seeds (initialisation and data order)
};
std::vector<Row> dp_rows(const DpConfig& cfg, std::vector<std::string>& notes);

struct PipelineConfig {
  std::vector<int> stages{2};
  std::vector<int> microbatches{4, 8};
  int steps = 12;  ///< measured steps per row (after a warm-up)
};
std::vector<Row> pipeline_rows(const PipelineConfig& cfg, std::vector<std::string>& notes);

/// A wide MLP block split over tp ranks (tensor_parallel.cpp).
struct TpConfig {
  std::vector<int> tp{1, 2, 4};
  std::int64_t width = 4096;
  std::int64_t batch = 64;
  double seconds = 3.0;  ///< per row, after a warm-up pass
};
std::vector<Row> tensor_parallel_rows(const TpConfig& cfg, std::vector<std::string>& notes);

/// A shell command's standard output (empty if it cannot run).
std::string run_capture(const std::string& cmd);

// The Python that runs the torch peers: $TROUPE_PYTHON, else Debian's
// /usr/bin/python3 (the one python3-torch installs into).
std::string peer_python();
// tools/bench/<name> under $TROUPE_SOURCE_DIR, else under the source tree the
// bench was built from (a copy of the tree elsewhere sets the variable).
std::string bench_script(const std::string& name);

}  // namespace troupe::bench
