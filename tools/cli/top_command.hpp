#pragma once
// `troupe top`: a live view of the cluster (nodes, actors, collective groups,
// training jobs), refreshed every second; one frame printed when stdout is
// not a terminal (or with --once).
#include <cstddef>
#include <string>
#include <vector>

#include "runtime/cluster/connect.hpp"

namespace troupe::cli {

int top_command(int argc, char** argv);

/// What top shows, without a terminal: the frame's lines for `pane` (0
/// nodes, 1 actors, 2 groups, 3 jobs), sorted by column `sort` (descending
/// with `reverse`), rows containing `filter`, fitted to width x height.
struct TopState {
  int pane = 0;
  std::size_t sort = 0;
  bool reverse = false;
  std::string filter;
};
std::vector<std::string> top_frame(const cluster::ClusterView& view, const std::vector<cluster::ActorView>& actors,
                                   const TopState& st, std::size_t width, std::size_t height);

}  // namespace troupe::cli
