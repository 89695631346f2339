#pragma once
// Internal to trainers/pipeline*.cpp: the split's measurement, the trace
// writer, and the checkpoint manifest's lists.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "trainers/pipeline.hpp"

namespace troupe::pipeline::detail {

/// Forward + backward time of each block on one micro-batch, in this
/// process (the median of a few runs after a warm-up).
std::vector<double> measure_blocks(const train::TrainConfig& cfg,
                                   const std::vector<std::pair<std::int64_t, std::int64_t>>& blocks);

/// A Chrome trace: one process per pipeline replica, one track per stage, a
/// flow arrow from each forward (backward) to the next (previous) model
/// stage's pass of the same micro-batch on another actor.
void write_trace(const std::string& path, const std::vector<std::vector<StageSpan>>& by_actor, int K, int v, int T = 1);

/// "a,b,c" -> {"a", "b", "c"} (the manifest's lists).
inline std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  for (std::size_t at = 0, next; at <= text.size(); at = next + 1) {
    next = text.find(',', at);
    if (next == std::string::npos) next = text.size();
    out.push_back(text.substr(at, next - at));
  }
  return out;
}

}  // namespace troupe::pipeline::detail
