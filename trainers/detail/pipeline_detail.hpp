#pragma once
// Internal to trainers/pipeline*.cpp: the split's measurement and the trace writer.
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

}  // namespace troupe::pipeline::detail
