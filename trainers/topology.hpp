#pragma once
// Topology files: a training run described in TOML (TOML++), as `troupe run`
// and the C++ example read it.
//
//   name = "fashion_mnist_dp"
//   [cluster]     address = ""              # "" : the embedded local cluster; else HOST:PORT
//   [resources]   cpus = 1, gpus = 0        # per replica actor
//   [model]       inputs, hidden = [..], classes, activation, dropout, layernorm
//   [data]        dataset = "fashion_mnist", dir, train_limit, eval_limit
//   [train]       strategy = "data_parallel", replicas, processes, batch,
//                 accumulation, epochs, seed, chunk_steps, threads, precision
//   [optimizer]   name = "sgd" | "adamw", lr, momentum, weight_decay, nesterov, clip_norm
//   [schedule]    kind = "constant" | "cosine" | "linear", warmup_steps, min_lr
//   [checkpoint]  dir, interval_steps, resume, max_failures
//   [output]      dir, metrics = "jsonl" | "csv", plot = "svg" | "none"
//
// Every key is checked: an unknown key, a wrong type or an impossible value
// is a TopologyError naming the file, the line and the key, before anything
// starts.
#include <cstdint>
#include <string>

#include "actors/replica.hpp"
#include "runtime/errors.hpp"
#include <map>
#include <string>

#include "trainers/data_parallel.hpp"

namespace troupe::dp {

class TopologyError : public Error {
 public:
  using Error::Error;
};

struct Topology {
  std::string path;        ///< the file it came from
  std::string name;
  std::string address;     ///< "" : embedded cluster
  double cpus = 1, gpus = 0;
  ReplicaConfig replica;
  TrainerOptions trainer;  ///< replicas, processes, chunk_steps, eval_limit, checkpoints
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

}  // namespace troupe::dp
