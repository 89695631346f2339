#pragma once
// What the head knows as rows (tables, JSON, `troupe top`'s panes): one
// builder per listing, shared by the listing commands and `troupe top`.
#include <string>
#include <vector>

#include "runtime/cluster/connect.hpp"
#include "tools/cli/table.hpp"

namespace troupe::cli {

struct Listing {
  std::string what;  ///< "actors", for messages
  std::vector<Column> cols;
  std::vector<Row> rows;
};

Listing node_listing(const cluster::ClusterView& view);
Listing actor_listing(const std::vector<cluster::ActorView>& actors);
Listing group_listing(const cluster::ClusterView& view);
Listing job_listing(const cluster::ClusterView& view);

std::string percent(double v);
std::string node_json(const cluster::NodeView& n);
std::string job_json(const cluster::JobView& j);
std::string group_json(const cluster::GroupView& g);
std::string split_text(const telemetry::PhaseSplit& s);
/// What makes the cluster unhealthy now, in words (empty: healthy).
std::vector<std::string> problems(const cluster::ClusterView& v);

}  // namespace troupe::cli
