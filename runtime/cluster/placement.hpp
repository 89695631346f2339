#pragma once
// Placement: which node (and which GPUs) an actor or a placement-group bundle
// gets, given what each node has free. Pure bookkeeping, no I/O: the head
// calls it on its strand and the unit tests call it directly.
//
// GPUs are counted per device: a fractional request (0 < g < 1) takes a share
// of one device (packed onto the fullest device it fits on); g >= 1 must be a
// whole number of wholly free devices. Everything else is a plain amount.
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/cluster/resources.hpp"
#include "runtime/placement.hpp"

namespace troupe::cluster {

using Strategy = troupe::Strategy;
const char* strategy_name(Strategy s);

/// A pool that can host actors: a node, or a placement-group bundle.
struct Slot {
  std::uint64_t node = 0;
  std::string label;              ///< "node 2 (host-b)", for errors
  bool alive = true;
  ResourceMap total, used;        ///< "GPU" in total is the device count
  std::vector<unsigned> gpu_ids;  ///< real device ids
  std::vector<double> gpu_used;   ///< share of each device in use (0..1)
  std::size_t actors = 0;

  /// A node with `total` resources and devices 0..GPU-1.
  static Slot node_slot(std::uint64_t id, std::string label, ResourceMap total);
};

struct Grant {
  std::uint64_t node = 0;
  ResourceMap resources;           ///< what was taken
  std::vector<unsigned> devices;   ///< device ids (real ids)
  std::vector<unsigned> device_slots;  ///< their positions in the slot
  double gpu_share = 0;            ///< per device
};

/// Why `slot` cannot take `req` (device -1: any), or "" if it can.
std::string shortfall(const Slot& slot, const ResourceMap& req, int device = -1);
/// Takes `req` from `slot` (which must fit: check shortfall first).
Grant take(Slot& slot, const ResourceMap& req, int device = -1);
/// Gives a grant back.
void give_back(Slot& slot, const Grant& g);

/// Checks a request is well formed (non-negative, GPU > 1 whole); UsageError otherwise.
void validate_request(const ResourceMap& req, const std::string& what);

/// Chooses a slot for one actor: `prefer` first if it fits, then the alive slot
/// with the fewest actors. Throws Infeasible naming every slot's shortfall.
std::size_t choose(const std::vector<Slot>& slots, const ResourceMap& req, int device, std::uint64_t prefer,
                   const std::string& what);

/// Places placement-group bundles onto `slots` by `strategy`; returns the slot
/// index per bundle (nothing is taken). Throws Infeasible with the reason.
std::vector<std::size_t> place_bundles(const std::vector<Slot>& slots, const std::vector<ResourceMap>& bundles,
                                       Strategy strategy);

}  // namespace troupe::cluster
