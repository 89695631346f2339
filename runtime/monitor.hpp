#pragma once
// What Runtime::monitor reports when an actor dies.
#include <cstdint>
#include <functional>
#include <string>

#include "runtime/errors.hpp"

namespace troupe {

struct DownEvent {
  std::uint64_t id = 0;
  std::string name;
  DeathCause cause = DeathCause::stopped;
  std::string detail;       ///< failure message, if any
  bool restarting = false;  ///< true if the actor is being re-created
  int restarts = 0;         ///< restarts done before this death
};
using MonitorFn = std::function<void(const DownEvent&)>;

}  // namespace troupe
