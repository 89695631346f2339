#pragma once
// Mutual challenge-response over a fresh connection (see auth.hpp), bounded in
// time: a peer that stalls, sends garbage or proves nothing is dropped.
#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "runtime/net/connection.hpp"
#include "proto/control.capnp.h"

namespace troupe::net {

inline constexpr std::uint32_t kProtocolVersion = 1;

/// Server side: returns the role the peer claimed once it proved the token.
/// Throws Error (wrong proof, bad message, timeout) otherwise.
asio::awaitable<proto::Role> accept_handshake(std::shared_ptr<Connection> c, std::string token,
                                              std::chrono::milliseconds limit);
/// Client side: proves the token as `role` and checks the server's proof.
/// Returns the Welcome's node id (0 unless the server assigns one later).
asio::awaitable<void> connect_handshake(std::shared_ptr<Connection> c, std::string token, proto::Role role,
                                        std::chrono::milliseconds limit);

inline constexpr unsigned kEnvelopeScratchWords = 64;

/// Builds a frame holding one message of root type S set up by `fill`.
template <class S, class F>
kj::Array<capnp::word> envelope_of(F&& fill) {
  // A small zeroed first segment on the stack: the default builder callocs
  // 8 KiB per message, which cost more than the rest of a small call.
  // Larger messages grow into heap segments as usual.
  capnp::word first[kEnvelopeScratchWords]{};
  capnp::MallocMessageBuilder b(kj::ArrayPtr<capnp::word>(first, kEnvelopeScratchWords));
  fill(b.initRoot<S>());
  return to_frame(b);
}

/// A control-plane frame: one Envelope set up by `fill`.
template <class F>
kj::Array<capnp::word> envelope(F&& fill) {
  return envelope_of<proto::Envelope>(std::forward<F>(fill));
}

}  // namespace troupe::net
