#pragma once
// Frames both ends of a worker connection build: call replies and the error
// they carry.
#include <cstdint>
#include <exception>
#include <string>

#include <kj/array.h>
#include <capnp/common.h>

#include "runtime/codec/codec.hpp"

namespace troupe::remote {

struct ErrorInfo {
  std::string type, message;
  bool actor_failure = false;  ///< ActorDied: the actor could not serve it
  bool culprit = false;        ///< ...because this very call raised ActorFailure
};
/// The error type a worker replies with for the call that failed its actor.
inline constexpr const char* kCulpritType = "troupe::ActorFailure";
/// The exception's type name and message, as a RemoteError will show them.
ErrorInfo describe(std::exception_ptr e);
/// A WorkerEnvelope reply to call `call` (on handle `target`, 0 for the worker's actor).
kj::Array<capnp::word> reply_frame(std::uint64_t call, std::uint64_t target, std::exception_ptr e,
                                   const Bytes& result);

}  // namespace troupe::remote
