#pragma once
// Topology files: a training run described in TOML (TOML++), as `troupe run`
// and the C++ example read it.
//
//   name = "fashion_mnist_dp"
//   [cluster]     address = ""              # "" : the embedded local cluster; else HOST:PORT
//   [resources]   cpus = 1, gpus = 0        # per worker actor (replica or stage)
//   [model]       inputs, hidden = [..], classes, activation, dropout, layernorm
//   [data]        dataset = "fashion_mnist", dir, train_limit, eval_limit
//   [train]       strategy = "data_parallel" | "pipeline" | "hybrid", replicas,
//                 processes, batch, accumulation, epochs, seed, chunk_steps,
//                 threads, precision
//   [pipeline]    stages, microbatches, schedule = "gpipe" | "1f1b" |
//                 "interleaved" | "zb-h1" | a written schedule (one line per
//                 stage), virtual_stages, layers = [[0, 4], [4, 9]] (blocks
//                 per model stage) or split = "params" | "time"
//                 (pipeline and hybrid only; hybrid: replicas copies of it)
//   [optimizer]   name = "sgd" | "adamw", lr, momentum, weight_decay, nesterov, clip_norm
//   [schedule]    kind = "constant" | "cosine" | "linear", warmup_steps, min_lr
//   [checkpoint]  dir, interval_steps, resume, max_failures
//   [output]      dir, metrics = "jsonl" | "csv", plot = "svg" | "none"
//
// Every key is checked: an unknown key, a wrong type or an impossible value
// is a TopologyError naming the file, the line and the key, before anything
// starts.
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "actors/replica.hpp"
#include "runtime/enum_words.hpp"
#include "runtime/errors.hpp"
#include "trainers/data_parallel.hpp"
#include "trainers/pipeline.hpp"

namespace troupe::train {

class TopologyError : public Error {
 public:
  using Error::Error;
};

/// data_parallel: replicas; pipeline: one pipeline of stage actors; hybrid:
/// replicas of a pipeline; three_d ("3d"): [parallel] dp x pp x tp, the
/// pipeline's stages split over tp ranks.
enum class Strategy : std::uint8_t { data_parallel, pipeline, hybrid, three_d };

struct Topology {
  std::string path;        ///< the file it came from
  std::string name;
  std::string address;     ///< "" : embedded cluster
  double cpus = 1, gpus = 0;  ///< per worker (replica or stage actor)
  Strategy strategy = Strategy::data_parallel;
  dp::ReplicaConfig replica;  ///< model, data, optimizer (every strategy)
  dp::TrainerOptions trainer;  ///< replicas, processes, chunk_steps, eval_limit, checkpoints
  /// pipeline, hybrid and 3d: [pipeline] and the shared keys above
  /// (processes, chunk_steps, eval_limit, checkpoints, resources); replicas
  /// for hybrid; for 3d stages, replicas and tensor_parallel from [parallel].
  pipeline::PipelineOptions pipeline;
  /// The pipeline's options with the shared keys filled in from `trainer`
  /// (as they are now: after `troupe run` flags changed them).
  pipeline::PipelineOptions pipeline_options() const;
  std::string out_dir;     ///< metrics and plot ("" : runs/<name>)
  std::string metrics = "jsonl";
  std::string plot = "svg";
  /// Where each key given was: "data.dir" -> "file:line:col" (for errors
  /// found after parsing, such as a data folder that is not there).
  std::map<std::string, std::string> where;
};

/// Reads and checks a topology file (TopologyError on any problem).
Topology load_topology(const std::string& path);
/// The same from text (`path` names it in errors).
Topology parse_topology(const std::string& text, const std::string& path);

}  // namespace troupe::train

template <>
struct troupe::EnumWords<troupe::train::Strategy> {
  static constexpr std::array<std::string_view, 4> words{"data_parallel", "pipeline", "hybrid", "3d"};
};

namespace troupe::dp {  // the names before the training layer was shared
using train::load_topology;
using train::parse_topology;
using train::Topology;
using train::TopologyError;
}  // namespace troupe::dp
