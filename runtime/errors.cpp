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
std::string died_message(std::uint64_t id, const std::string& name, DeathCause cause, const std::string& detail,
                         const RestartInfo& restart) {
  auto who = name.empty() ? fmt::format("actor #{}", id) : fmt::format("actor '{}' (#{})", name, id);
  if (restart.number > 0) {
    auto of = restart.max < 0 ? std::string("unlimited") : std::to_string(restart.max);
    auto tail = detail.empty() ? std::string() : ": " + detail;
    if (restart.culprit)
      return fmt::format("{} failed in this call and was restarted (restart {} of {}){}", who, restart.number, of,
                         tail);
    return fmt::format("{} failed and was restarted (restart {} of {}); this call was in flight and is not "
                       "retried{}",
                       who, restart.number, of, tail);
  }
  // A failure past max_restarts says so: the restarts were there, and spent.
  const std::string spent = cause == DeathCause::failed && restart.max > 0
                                ? fmt::format(" (its {} restart{} used up)", restart.max, restart.max == 1 ? "" : "s")
                                : std::string();
  if (detail.empty()) return fmt::format("{} is dead: {}{}", who, to_string(cause), spent);
  return fmt::format("{} is dead: {}: {}{}", who, to_string(cause), detail, spent);
}
}  // namespace

ActorDied::ActorDied(std::uint64_t id, std::string name, DeathCause cause, std::string detail, RestartInfo restart)
    : Error(died_message(id, name, cause, detail, restart)),
      id_(id),
      name_(std::move(name)),
      cause_(cause),
      detail_(std::move(detail)),
      restart_(restart) {}

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
