#pragma once
// What a driver tells the cluster head about its training jobs and collective
// groups, for `troupe status|jobs|groups|top` and the head's /metrics.
//
// The trainers report after every chunk of steps (trainers/run_loop); a
// custom training loop can report the same way with Runtime::report_job. A
// runtime not joined to a cluster (no address, no process actor yet) drops
// reports: nothing starts a cluster just to be watched.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/codec/codec.hpp"

namespace troupe::telemetry {

/// Seconds per step, the mean over the ranks (DeepSpeed's wall-clock breakdown).
struct PhaseSplit {
  double data = 0, forward = 0, backward = 0;
  double collective = 0;  ///< waiting for the gradients' all-reduce (a pipeline stage: for its peers)
  double optimizer = 0;
};

/// One rank's seconds per step over the last chunk.
struct RankTiming {
  std::uint32_t rank = 0;
  std::string label;        ///< "replica 1", "stage 0 dp 1 tp 0"
  std::string peers;        ///< ranks with the same `peers` do the same work: they are compared
  std::uint64_t actor_id = 0;
  double compute_s = 0;     ///< everything but waiting for peers
  double wait_s = 0;        ///< waiting for peers
};

struct JobStatus {
  std::uint64_t id = 0;     ///< the driver's number for the job (Runtime::next_job_id)
  std::string name, strategy;
  std::string state = "running";  ///< "running", "finished", "failed"
  std::int64_t step = 0, total_steps = 0, epoch = 0;
  float loss = 0;
  double samples_per_s = 0, elapsed_s = 0, eta_s = 0;
  double step_s = 0;        ///< the last chunk's seconds per step
  PhaseSplit split;
  std::vector<RankTiming> ranks;
  std::string detail;       ///< why it failed
  std::uint32_t recoveries = 0;
  double test_accuracy = -1;  ///< the last evaluation's (-1: none yet)
};

/// A rank whose steps are slower than its peers' (nvidia-resiliency-ext
/// scores ranks the same way: each against the median of its peers).
struct Straggler {
  std::uint32_t rank = 0;
  std::string label;
  double compute_s = 0;
  double peers_s = 0;       ///< the median of its peers' compute_s
  double slowdown = 0;      ///< compute_s / peers_s
  std::int64_t since_step = 0;  ///< the head: the step of the first report that named it (in a row)
};

/// Ranks whose compute per step is at least `ratio` times the median of the
/// other ranks with the same `peers`, and `min_gap_s` more in absolute terms
/// (noise on sub-millisecond steps is not a straggler). Slowest first. A rank
/// with no peer is never one.
std::vector<Straggler> find_stragglers(const std::vector<RankTiming>& ranks, double ratio = 1.3,
                                       double min_gap_s = 0.0005);
/// "rank 1 (replica 1): 4.10 ms/step, 2.3x its peers' 1.80 ms".
std::string describe(const Straggler& s);

/// Stragglers over a job's reports (a chunk's, or a live window's). One slow
/// report is noise, and so is one fast one: a rank is named once
/// find_stragglers names it in two of three reports in a row, since the
/// step of the first of those, and stays named (its figures the last slow
/// report's) until it keeps up in three reports in a row. A job's first
/// report (its warm-up) names no one.
class StragglerWatch {
 public:
  /// The report at `step`; returns the ranks named now, slowest first.
  const std::vector<Straggler>& update(std::int64_t step, const std::vector<RankTiming>& ranks);
  const std::vector<Straggler>& named() const noexcept { return named_; }

 private:
  struct Rank {
    unsigned recent = 0;     // the last three reports, a bit each (1: slow), newest lowest
    std::int64_t since = 0;  // the step of the first slow report of this run of them
    bool named = false;
    int calm = 0;            // reports in a row it kept up, while named
    Straggler last;          // its figures in its last slow report
  };
  std::uint64_t reports_ = 0;
  std::map<std::uint32_t, Rank> ranks_;
  std::vector<Straggler> named_;
};

struct GroupStatus {
  std::string name;
  std::uint64_t uid = 0;
  std::string backend;
  std::vector<std::uint64_t> members;  ///< actor ids by rank (0: an in-process actor)
  std::string state = "ready";         ///< "ready", "aborted"
  std::string detail;                  ///< why it was aborted
};

// ---- Actors and groups, sampled in every process --------------------------

/// Latency histogram buckets: bucket b holds [2^b, 2^(b+1)) microseconds
/// (bucket 0 also everything under 1 us, the last everything over 2^23 us).
inline constexpr std::size_t kLatencyBuckets = 24;
constexpr std::size_t latency_bucket(std::int64_t ns) noexcept {
  std::int64_t us = ns / 1000;
  std::size_t b = 0;
  while (us > 1 && b + 1 < kLatencyBuckets) us >>= 1, ++b;
  return b;
}
/// The q-quantile (0..1) of a histogram's counts, in seconds (the upper edge
/// of its bucket); 0 with no counts.
double quantile_s(const std::vector<std::uint64_t>& counts, double q);

/// A training actor's steps so far (troupe::note_step), cumulative since it
/// started: a driver scores its ranks from two of these while a chunk of
/// steps is still running (live stragglers).
struct StepProgress {
  std::int64_t step = 0;    ///< the last step it finished (the job's step number)
  std::uint64_t steps = 0;  ///< steps it noted
  double compute_s = 0;     ///< their time computing
  double wait_s = 0;        ///< their time waiting for peers
  TROUPE_FIELDS(step, steps, compute_s, wait_s)
};

/// An actor's counters (cumulative since it started).
struct ActorSample {
  std::uint64_t id = 0;
  std::uint64_t calls = 0;                ///< messages run
  std::uint32_t depth = 0;                ///< messages waiting now (estimated: +-7 per calling thread)
  std::vector<std::uint64_t> latency;     ///< sampled calls (1 in 8), queueing to end, by bucket
  StepProgress progress;
  TROUPE_FIELDS(id, calls, depth, latency, progress)
};

/// One rank's counters for a collective group (cumulative).
struct GroupSample {
  std::string name;
  std::uint64_t uid = 0;
  std::uint32_t rank = 0, world = 0;
  std::uint64_t ops = 0, bytes = 0;       ///< operations completed, their payload bytes
  double busy_s = 0;                      ///< time inside operations (waiting for peers too)
  std::uint64_t last = 0;                 ///< operations this rank arrived at last (shm groups; 0 elsewhere)
  TROUPE_FIELDS(name, uid, rank, world, ops, bytes, busy_s, last)
};

/// What a worker process sends its driver every second, and between those,
/// every 50 ms while its actor notes steps (progress_only: its actor's
/// counters alone, for the driver; the head gets the full ones).
struct ProcessSample {
  std::vector<ActorSample> actors;
  std::vector<GroupSample> groups;
  bool progress_only = false;
  TROUPE_FIELDS(actors, groups, progress_only)
};

}  // namespace troupe::telemetry

namespace troupe {
/// Inside a training actor's method: it finished step `step` (the job's step
/// number), computing for `compute_s` seconds and waiting for its peers for
/// `wait_s`. The trainers call it every step; a custom training actor may.
/// Its driver compares the ranks of a job from these while a chunk of steps
/// runs and names a slow one to the cluster head (`troupe jobs`, `troupe
/// top`) within a few steps. A few stores under the actor's own flag; nothing
/// outside an actor.
void note_step(std::int64_t step, double compute_s, double wait_s) noexcept;
}  // namespace troupe
