#pragma once
// Actor handles inside a worker process: a handle the driver sent decodes to
// a routed RemoteActor, whose calls go to the driver over the worker's own
// connection (the driver's side, the table of handles it sent, is in the
// core: runtime/detail/process.hpp).
#include <cstdint>
#include <memory>

#include "runtime/detail/process.hpp"

namespace troupe::remote {

/// A handle whose calls go to the driver's actor `target` (one per target).
std::shared_ptr<detail::ProcessActor> routed_actor(std::uint64_t target, const char* type_name);

}  // namespace troupe::remote
