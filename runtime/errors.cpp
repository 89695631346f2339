#include "runtime/errors.hpp"

#include <fmt/format.h>

namespace troupe {

const char* to_string(DeathCause c) noexcept {
  switch (c) {
    case DeathCause::stopped: return "stopped";
    case DeathCause::killed: return "killed";
    case DeathCause::failed: return "failed";
    case DeathCause::runtime_shutdown: return "runtime shut down";
  }
  return "unknown";
}

namespace {
std::string died_message(std::uint64_t id, const std::string& name, DeathCause cause,
                         const std::string& detail) {
  auto who = name.empty() ? fmt::format("actor #{}", id) : fmt::format("actor '{}' (#{})", name, id);
  if (detail.empty()) return fmt::format("{} is dead: {}", who, to_string(cause));
  return fmt::format("{} is dead: {}: {}", who, to_string(cause), detail);
}
}  // namespace

ActorDied::ActorDied(std::uint64_t id, std::string name, DeathCause cause, std::string detail)
    : Error(died_message(id, name, cause, detail)),
      id_(id),
      name_(std::move(name)),
      cause_(cause),
      detail_(std::move(detail)) {}

std::string detail::what_of(const std::exception_ptr& e) {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace troupe
