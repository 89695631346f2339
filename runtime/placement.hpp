#pragma once
// Resource requests and placement groups, as a driver writes them.
//
//   auto pg = rt.placement_group({{{"CPU", 1}}, {{"CPU", 1}}}, troupe::Strategy::strict_spread);
//   auto a = rt.spawn<Worker>(troupe::Options{}.cpus(1).placement_group(pg, 0));
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace troupe {

/// name -> amount: "CPU", "GPU" (fractions of one device allowed), "memory"
/// (bytes), or any custom resource a node was started with (--resources).
using Resources = std::map<std::string, double>;

/// How a placement group's bundles are spread over nodes (as in Ray).
enum class Strategy {
  pack,          ///< as few nodes as possible (one if it fits)
  spread,        ///< distinct nodes where possible
  strict_pack,   ///< all bundles on one node, or fail
  strict_spread  ///< every bundle on its own node, or fail
};

/// Resources reserved on nodes as a unit; actors spawned into a bundle draw on
/// its reservation. Removed with Runtime::remove_placement_group or when the
/// driver exits.
struct PlacementGroup {
  std::uint64_t id = 0;
  Strategy strategy = Strategy::pack;
  std::vector<Resources> bundles;
  std::vector<std::uint64_t> nodes;  ///< the node of each bundle
  bool valid() const noexcept { return id != 0; }
};

}  // namespace troupe
