#pragma once
// Pipeline parallelism from actors: the model is cut into K x v contiguous
// model stages; K stage actors (one per worker process or GPU) each own v of
// them (chunk c of actor r is model stage c*K + r) and run one instruction
// list of a checked schedule (trainers/schedule.hpp) per optimizer step: M
// micro-batches go forward and backward through every model stage, the
// activations and gradients passing stage to stage over the collective
// group "pp" (tag 0 activations, 1 gradients), never through the driver.
// Hybrid runs hold D copies of the pipeline (a D x K mesh); each stage's
// gradients are all-reduced across its D copies (group "pp_dp") as soon as
// its last backward is done, while the pipeline drains.
// 3-D runs also split each stage over T tensor-parallel ranks (a dp x pp x tp
// mesh, tp fastest): the hidden layers train.tp_blocks names live split over
// the stage's tp group "tp" (actors/nn/tensor_parallel.hpp), the others whole
// on every tp rank; tp rank t of a stage passes activations to tp rank t of
// the next over its own "pp" group (no cut falls inside a split block, so
// what passes is whole).
//
// With float32 on the CPU a pipeline computes exactly what one process
// computes training the whole model with gradient accumulation over the
// same M micro-batches in the same order (and a hybrid run what data
// parallelism over D replicas computes): the tests compare every parameter
// bit for bit.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "actors/training.hpp"
#include "runtime/troupe.hpp"
#include "trainers/run_loop.hpp"
#include "trainers/schedule.hpp"

namespace troupe::pipeline {

/// A pipeline option that cannot work, with the topology key it comes from
/// ("pipeline.layers", ...), so `troupe run` can point at the file's line.
class OptionError : public UsageError {
 public:
  OptionError(std::string key, const std::string& what) : UsageError(what), key_(std::move(key)) {}
  const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

/// How the model's blocks are cut into model stages. A block is one hidden
/// layer with what follows it (norm, activation, dropout); the output layer
/// is the last block.
/// Named "layers", "params", "time" (topology files give explicit ranges as
/// pipeline.layers, the others as split).
enum class Split : std::uint8_t { explicit_ranges, params, time };

/// What every stage actor is built from (the same for all of them).
struct StageConfig {
  train::TrainConfig train;          ///< model, data, optimizer; train.accumulation is M, train.batch the micro-batch
  int stages = 2;                    ///< K stage actors per pipeline
  int virtual_stages = 1;            ///< v chunks per actor
  int replicas = 1;                  ///< D copies of the pipeline (hybrid)
  int tensor_parallel = 1;           ///< T tp ranks per stage (3-D)
  std::string schedule;              ///< the checked schedule's text (to_text), one line per actor
  std::vector<std::int64_t> bounds;  ///< model-layer index where each model stage starts, plus the end (K*v + 1 values)
  std::vector<std::int64_t> block_bounds;  ///< the same in blocks (reports and checkpoints)
  bool batch_transfers = false;            ///< PipelineOptions::batch_transfers
  TROUPE_FIELDS(train, stages, virtual_stages, replicas, tensor_parallel, schedule, bounds, block_bounds, batch_transfers)
};

/// A span of a stage's timeline: what it did, for which micro-batch and chunk, when.
struct StageSpan {
  /// F, B, I, W (compute); RECV_F / RECV_B (waiting for a transfer);
  /// REDUCE_GRAD (a mark where a chunk's all-reduce starts); drain (STEP
  /// waiting for the step's sends and all-reduces); STEP (the update)
  std::string what;
  std::int32_t mb = -1, chunk = 0;
  std::int64_t step = 0;
  double start_us = 0, end_us = 0;  ///< since the stage's clock origin (system clock, microseconds)
  TROUPE_FIELDS(what, mb, chunk, step, start_us, end_us)
};

/// One named parameter's values (tests compare runs with these).
struct NamedValues {
  std::string name;
  std::vector<float> values;
  TROUPE_FIELDS(name, values)
};

/// A stage actor: its chunks of the model, their optimizer state and tapes.
class Stage {
 public:
  explicit Stage(StageConfig cfg);
  ~Stage();
  /// Joins the pipeline's group (and the hybrid's gradient group), takes its
  /// chunks, and agrees with its neighbours on the shape and dtype of what
  /// passes between them (UsageError naming both stages when they differ).
  /// Returns what it holds, e.g. "stage 1: model stage 1 = blocks [4, 9) (layers [8, 17), 2100000 parameters)".
  Task<std::string> setup();
  /// Runs n optimizer steps of the schedule.
  Task<std::vector<train::StepStats>> train(std::int64_t n);
  /// The test set (its first `limit` examples; this replica's share of
  /// them) forward through the pipeline; the counts are the last stage's
  /// (zeros elsewhere).
  Task<train::EvalStats> evaluate(std::int64_t limit);
  std::int64_t steps_per_epoch();
  std::vector<NamedValues> parameters();
  std::uint64_t param_hash();
  /// Writes this stage's parameters, optimizer state and data position to
  /// `path` atomically; load checks it was written for this configuration and
  /// this stage. Both return the step.
  std::int64_t save(std::string path);
  std::int64_t load(std::string path);
  /// Loads a pipeline checkpoint saved in another layout (stages, tp ranks,
  /// replicas, cut): `manifest` names every (stage, tp rank) file of the run
  /// that wrote it. This stage takes its parameters and optimizer state from
  /// them, put back whole and cut to its own part, bit for bit; the data
  /// position continues from the step. CheckpointError when the model or
  /// the optimizer differs, naming what. Returns the step.
  std::int64_t reshard(std::string manifest);
  /// The optimizer's state tensors ("<param>.<buffer>"), as parameters() gives the parameters.
  std::vector<NamedValues> optimizer_state();
  /// The spans recorded since the last call (at most the last 200,000).
  std::vector<StageSpan> timeline();
  int pid() const;

 private:
  Task<std::vector<train::StepStats>> run_steps(std::int64_t n);
  Task<train::EvalStats> run_eval(std::int64_t limit);
  // A stage that fails fails its groups too: its neighbours and its twins
  // stop waiting for it at once, naming it.
  void fail_groups(std::exception_ptr e);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct PipelineOptions {
  int stages = 2;          ///< K
  int microbatches = 4;    ///< M (sets train.accumulation)
  int virtual_stages = 1;  ///< v (interleaved schedules)
  int replicas = 1;        ///< D: copies of the pipeline, gradients all-reduced across them
  /// T: tensor-parallel ranks per stage, splitting the hidden layers
  /// train.tp_blocks names (a dp x pp x tp mesh of D x K x T stage actors).
  int tensor_parallel = 1;
  /// "gpipe", "1f1b", "interleaved", "zb-h1", or a written schedule (text as
  /// schedule.hpp prints it, one line per stage actor).
  std::string schedule = "1f1b";
  /// Blocks of each model stage as [first, last) ranges covering the model in
  /// order (K x v of them); empty: split as `split` says.
  std::vector<std::pair<std::int64_t, std::int64_t>> layers;
  Split split = Split::params;
  bool processes = true;  ///< each stage in a worker process (else in this process)
  /// Post each run of consecutive transfers of a stage's list as one batch
  /// (Megatron's batch_p2p_comm). Device groups always do: they take a pair's
  /// transfers in posted order (pipeline::check_ordered); host groups move
  /// each transfer alone by default.
  bool batch_transfers = false;
  std::int64_t chunk_steps = 50;
  std::string job_name;  ///< the name `troupe jobs` shows ("": "pipeline")
  std::int64_t eval_limit = 0;
  bool eval_each_epoch = true;
  /// The longest a stage waits on a neighbour (a transfer, an all-reduce)
  /// before the run fails naming it; a stage that has not answered 5 s after
  /// its peers failed is killed (it is stuck), so nothing waits on it.
  std::uint32_t transfer_timeout_ms = 120000;
  Options actor_options;  ///< resources etc. for each stage actor
  std::string checkpoint_dir;
  std::int64_t checkpoint_every = 0;
  bool resume = true;
  int max_failures = 3;
  /// A Chrome trace of the run (each stage's last 200,000 spans: forward,
  /// backward, waits; a track per stage, flow arrows for transfers), written
  /// at the end ("": none).
  std::string trace;
  std::function<void(std::int64_t step, Mesh<Stage>& stages)> after_chunk;
  /// Called once the stages hold a checkpoint's state (a resumed run, or one
  /// recovering from a failure), before they train on: `step` is its step.
  /// A checkpoint saved in another layout (stages, tensor_parallel, the cut)
  /// is resharded: each stage takes its part of the whole tensors.
  std::function<void(std::int64_t step, Mesh<Stage>& stages)> on_resume;
};

/// The blocks of the model cfg describes (a hidden layer with what follows
/// it; the output layer last) as model-layer index ranges.
std::vector<std::pair<std::int64_t, std::int64_t>> model_blocks(const train::TrainConfig& cfg);
/// Cuts `costs` (one per block) into `parts` contiguous ranges whose largest
/// sum is as small as it can be; UsageError when there are fewer blocks than parts.
std::vector<std::int64_t> balance(const std::vector<double>& costs, int parts);

class PipelineTrainer {
 public:
  /// Checks everything that can be checked before a stage is spawned: the
  /// configuration, the split, and the schedule (generated or written),
  /// which it simulates (ScheduleError naming the stage, action and
  /// micro-batch when it cannot run).
  PipelineTrainer(Runtime& rt, train::TrainConfig cfg, PipelineOptions opts);
  train::FitResult fit(const std::function<void(const train::Progress&)>& on_progress = {});
  /// The schedule the stages run, and its simulation (bubble, peak activations).
  const Schedule& schedule() const noexcept { return schedule_; }
  const Report& report() const noexcept { return report_; }
  /// The schedule's theoretical bubble (its instruction lists, F = I = W = 1, B = 2).
  double bubble_theory() const noexcept { return report_.bubble; }
  /// Blocks per model stage, e.g. {{0, 5}, {5, 9}}.
  const std::vector<std::pair<std::int64_t, std::int64_t>>& stage_blocks() const noexcept { return blocks_; }
  /// A few lines saying how the model was cut and how the schedule runs.
  std::string describe() const;
  std::string checkpoint_path() const;

 private:
  // 3-D in worker processes: each tp group in a placement group of its own.
  Mesh<Stage> spawn_tp_groups(const MeshShape& shape, const Options& o, std::vector<PlacementGroup>& groups,
                              std::vector<std::string>& warnings);
  Runtime& rt_;
  StageConfig cfg_;
  PipelineOptions opts_;
  Schedule schedule_;
  Report report_;
  std::vector<std::pair<std::int64_t, std::int64_t>> blocks_;
  std::vector<double> block_costs_;  // what the split balanced: parameters, or seconds measured; empty for explicit ranges
};

}  // namespace troupe::pipeline

template <>
struct troupe::EnumWords<troupe::pipeline::Split> {
  static constexpr std::array<std::string_view, 3> words{"layers", "params", "time"};
};

