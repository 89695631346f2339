#pragma once
// Pipeline schedules as data: one instruction list per stage actor.
//
// K stage actors each hold v model chunks ("virtual stages"); chunk c of actor
// r is model stage c*K + r (Megatron's interleaving), so with v = 1 actor r is
// model stage r. A micro-batch goes forward through model stages 0..K*v-1 and
// backward the other way. Instructions:
//
//   F      forward of one micro-batch through the chunk
//   B      backward (input and weight gradients together)
//   I / W  the split backward: input gradient (what the previous stage waits
//          for), then weight gradient (what only the optimizer waits for)
//   SEND_F / RECV_F   the activation to / from the neighbouring model stage
//   SEND_B / RECV_B   the gradient to / from the neighbouring model stage
//   REDUCE_GRAD       the chunk's gradients all-reduced across data-parallel
//                     replicas of the pipeline (hybrid runs)
//   STEP              the optimizer step, once, last
//
// Transfers between model stages on the same actor (v > 1 with K = 1) stay
// local and have no SEND/RECV. A send never holds its stage up: the transport
// keeps the data until the receiver takes it. A receive waits for its send.
// Between two stage actors, each direction and kind (activations, gradients)
// is one ordered channel: the receiver takes transfers in the order they were
// sent (as NCCL matches them on a communicator). So a schedule deadlocks only
// through receives, and the checker finds every such cycle.
//
// Text: one line per stage, "stage R: A A A ...", each action KIND[MB][@CHUNK]
// (e.g. "F3", "SEND_B0@1", "REDUCE_GRAD@1", "STEP"); '#' starts a comment.
//
// check() simulates a schedule before anything is launched: it refuses one that
// is incomplete, breaks a dependency or can deadlock, naming the stage, the
// action and the micro-batch, and reports the peak live activations of every
// stage and the bubble the schedule has with the given costs.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/enum_words.hpp"
#include "runtime/errors.hpp"

namespace troupe::pipeline {

/// A schedule that cannot run as written, or text that does not parse.
class ScheduleError : public UsageError {
 public:
  using UsageError::UsageError;
};

enum class Op : std::uint8_t { F, B, I, W, SEND_F, RECV_F, SEND_B, RECV_B, REDUCE_GRAD, STEP };

const char* op_name(Op op) noexcept;

struct Action {
  Op op = Op::F;
  int mb = -1;    ///< micro-batch; -1 for REDUCE_GRAD and STEP
  int chunk = 0;  ///< which of the actor's v chunks

  bool operator==(const Action&) const = default;
};

/// "F3", "SEND_B0@1", "REDUCE_GRAD", "STEP".
std::string to_string(const Action& a);

enum class Kind : std::uint8_t { gpipe, one_f_one_b, interleaved, zb_h1 };

/// "gpipe", "1f1b", "interleaved", "zb-h1".
const char* kind_name(Kind k) noexcept;
/// Parses a schedule name; ScheduleError naming the choices otherwise.
Kind parse_kind(std::string_view name);
/// Whether `schedule` is written out (instruction lists: it has a ':' or
/// more than one word) rather than a generator's name.
bool is_written(std::string_view schedule) noexcept;

struct Schedule {
  int stages = 1;          ///< K: stage actors
  int microbatches = 1;    ///< M
  int virtual_stages = 1;  ///< v: chunks per actor
  std::vector<std::vector<Action>> actions;  ///< one list per stage actor

  int model_stages() const noexcept { return stages * virtual_stages; }
};

/// A generated schedule. interleaved takes v >= 1 (v = 1 is 1F1B); the others
/// take v = 1. Any K >= 1 and M >= 1. reduce_grad adds REDUCE_GRAD for every
/// chunk once its last backward is done (hybrid runs).
Schedule generate(Kind kind, int stages, int microbatches, int virtual_stages = 1, bool reduce_grad = false);

/// One line per stage; parse(to_text(s)) == s.
std::string to_text(const Schedule& s);

/// Parses text written by to_text or by hand. The stages are the lines; the
/// micro-batches and chunks are what the actions name. ScheduleError names the
/// line and the token that is wrong.
Schedule parse(std::string_view text);

/// Simulated durations of the compute instructions (transfers take none).
struct Costs {
  double f = 1, b = 2, i = 1, w = 1;
};

struct Span {
  int stage = 0;
  Action action;
  double start = 0, end = 0;
};

struct Report {
  double makespan = 0;  ///< when the last stage finishes
  double bubble = 0;    ///< idle share of stages x makespan
  std::vector<int> peak_activations;  ///< per stage: most micro-batch chunks between F and their last backward
  std::vector<Span> timeline;         ///< compute spans, in order of start
};

/// Refuses (ScheduleError) a schedule that is incomplete (every micro-batch
/// goes forward and backward exactly once through every chunk), breaks a
/// dependency (a transfer or backward before what it needs, a transfer with no
/// peer, a channel's transfers received out of order) or can deadlock (a cycle
/// of receives). The message names the stage, the action and the micro-batch.
/// Otherwise simulates it with `costs`.
Report check(const Schedule& s, const Costs& costs = {});

/// Device groups (NCCL, cuda_local) take the transfers between two ranks in
/// the order they are posted, whatever their tag, and a stage on one posts
/// each run of consecutive transfers of its list as one group that completes
/// as a whole (ncclGroupStart/End), one group at a time. check_ordered()
/// simulates that and refuses (ScheduleError naming both sides) a schedule
/// that would pair two different transfers or wait in a circle. Run it after
/// check(), for pipelines on a device.
void check_ordered(const Schedule& s);
/// Per stage: the runs of consecutive transfers of its list, each as the
/// action indices in the order a stage on a device group posts them (one
/// group each; within a group both ends order a pair's transfers alike: by
/// kind, micro-batch and model stage).
std::vector<std::vector<std::vector<std::size_t>>> transfer_groups(const Schedule& s);

/// The textbook bubble of a generated schedule with Costs{} (F = I = W = 1,
/// B = 2): GPipe and 1F1B (K-1)/(M+K-1), interleaved (K-1)/(v*M+K-1), ZB-H1
/// about (K-1)/(3M+K-1). check() gives the bubble of the exact instruction
/// lists, which tests compare with these.
double theory_bubble(Kind kind, int stages, int microbatches, int virtual_stages = 1);

}  // namespace troupe::pipeline

template <>
struct troupe::EnumWords<troupe::pipeline::Kind> {
  static constexpr std::array<std::string_view, 4> words{"gpipe", "1f1b", "interleaved", "zb-h1"};
};

