#pragma once
// The errors troupe raises at a caller's get() / co_await, and what they carry.
#include <chrono>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>

namespace troupe {

/// Base of every error troupe itself raises (user exceptions travel unchanged).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Ref::get(timeout) ran out of time; the call itself may still complete later.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

/// Why an actor is no longer running.
enum class DeathCause : std::uint8_t {
  stopped,           ///< stop() was called and on_stop ran
  killed,            ///< kill() was called
  failed,            ///< its constructor, on_start or a method threw ActorFailure
  runtime_shutdown,  ///< the runtime it lived in was shut down
};
const char* to_string(DeathCause c) noexcept;

/// When a failed actor was re-created: which restart followed the failure.
struct RestartInfo {
  int number = 0;         ///< the restart that followed (1 = the first); 0: none, the actor is dead
  int max = 0;            ///< Options::max_restarts (-1: unlimited): a dead actor's message says they were used up
  bool culprit = false;   ///< this call raised the failure (it is never retried)
};

/// A call reached (or was pending on) an actor that is stopped or dead, or
/// that failed and was restarted while the call was in flight and the call
/// was not retried (restarted() is then true: the actor itself lives on).
class ActorDied : public Error {
 public:
  ActorDied(std::uint64_t id, std::string name, DeathCause cause, std::string detail, RestartInfo restart = {});
  std::uint64_t actor_id() const noexcept { return id_; }
  const std::string& actor_name() const noexcept { return name_; }
  DeathCause cause() const noexcept { return cause_; }
  /// The failure message (for DeathCause::failed) or empty.
  const std::string& detail() const noexcept { return detail_; }
  /// True when the actor was re-created after this failure (it is not dead).
  bool restarted() const noexcept { return restart_.number > 0; }
  const RestartInfo& restart() const noexcept { return restart_; }

 private:
  std::uint64_t id_;
  std::string name_;
  DeathCause cause_;
  std::string detail_;
  RestartInfo restart_;
};

/// Thrown from an actor method (or constructor / on_start) to declare the actor
/// itself broken: the actor dies with DeathCause::failed and, if its
/// Options::max_restarts allows, is re-created from its constructor arguments.
/// Any other exception from a method only fails that one call.
class ActorFailure : public Error {
 public:
  using Error::Error;
};

/// spawn() with a name another live actor already holds.
class DuplicateName : public Error {
 public:
  using Error::Error;
};

/// A lookup by name found no live actor of that name (or of that type).
class ActorNotFound : public Error {
 public:
  using Error::Error;
};

/// A Ref whose producer went away without a result (its runtime was destroyed
/// before the work could run).
class BrokenRef : public Error {
 public:
  using Error::Error;
};

/// Bytes that do not decode: truncated, oversized or malformed input.
class DecodeError : public Error {
 public:
  using Error::Error;
};

/// An exception thrown by a method of a process actor, carried back by type
/// name and message (the C++ type itself cannot cross a process boundary).
class RemoteError : public Error {
 public:
  RemoteError(std::string type, std::string message)
      : Error(type + ": " + message), type_(std::move(type)), message_(std::move(message)) {}
  const std::string& type() const noexcept { return type_; }
  const std::string& message() const noexcept { return message_; }

 private:
  std::string type_, message_;
};

/// Wrong use of the API (bad rank, bad option), reported where it happens.
class UsageError : public Error {
 public:
  using Error::Error;
};

/// No node can host an actor or placement group now: the message names each
/// short resource and where. Raised at once, never left pending.
class Infeasible : public Error {
 public:
  using Error::Error;
};

namespace detail {
/// The message of the exception `e` holds ("" for none).
std::string what_of(const std::exception_ptr& e);
}  // namespace detail

}  // namespace troupe
