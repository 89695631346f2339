#pragma once
// Frames on a process actor's link that belong to the layer above this one:
// collective groups (membership, aborts) and their rendezvous store. That
// layer (runtime/coll/link.cpp) installs its handlers here when it is linked
// into the program; without it such frames are dropped.
#include <cstdint>
#include <functional>

#include <kj/array.h>

#include "proto/control.capnp.h"
#include "runtime/telemetry.hpp"

namespace troupe::remote {

class RemoteActor;

struct LinkHooks {
  /// Driver side: a frame from `from`'s worker (STORE_SET, STORE_GET,
  /// JOIN_REQUEST); `reply` sends a frame back down that worker's link.
  void (*from_worker)(RemoteActor& from, proto::WorkerEnvelope::Reader env,
                      std::function<void(kj::Array<capnp::word>)> reply) = nullptr;
  /// Worker side: a frame from the driver for the hosted actor, `actor` being
  /// its id in this process (JOIN_GROUP, STORE_VALUE, ABORT_GROUP).
  void (*from_driver)(std::uint64_t actor, proto::WorkerEnvelope::Reader env) = nullptr;
  /// Worker side: the link to the driver is gone.
  void (*lost)() = nullptr;
  /// This process's collective groups, sampled (for the stats frame).
  std::vector<telemetry::GroupSample> (*group_samples)() = nullptr;
};
/// The process-wide hooks (constructed on first use, so a registrar running
/// during static initialisation finds them).
LinkHooks& link_hooks();

}  // namespace troupe::remote
