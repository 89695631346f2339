#include "runtime/detail/process_role.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "runtime/errors.hpp"

namespace troupe {

namespace {
std::mutex mu;
std::atomic<bool> initialised{false};
std::string& chosen() {
  static std::string address;
  return address;
}
}  // namespace

namespace detail {
std::string default_address() {
  if (!initialised.load()) {
    // A driver without init() still honours $TROUPE_ADDRESS.
    const char* env = std::getenv("TROUPE_ADDRESS");
    return env ? env : "";
  }
  std::lock_guard lock(mu);
  return chosen();
}

bool init_called() noexcept { return initialised.load(); }

bool launched_as_worker() noexcept {
  return !initialised.load() && (std::getenv("TROUPE_WORKER_FD") || std::getenv("TROUPE_CONNECT"));
}

void exit_worker_without_init() {
  std::fprintf(stderr,
               "troupe worker %d: this executable was started as a process actor's worker, but its main() made a "
               "troupe::Runtime without calling troupe::init(argc, argv) first; call troupe::init(argc, argv) "
               "first in main (the worker re-runs main, and init is what makes it host the actor)\n",
               static_cast<int>(::getpid()));
  std::fflush(stderr);
  std::_Exit(kWorkerWithoutInit);
}

void require_init(const std::string& what) {
  if (initialised.load()) return;
  throw UsageError(fmt::format(
      "{}: call troupe::init(argc, argv) first in main (a process actor's worker re-runs this executable's main(), "
      "and init is what makes it host the actor instead of running your driver again)",
      what));
}

void mark_init(std::string address) {
  {
    std::lock_guard lock(mu);
    chosen() = std::move(address);
  }
  initialised = true;
}
}  // namespace detail

}  // namespace troupe
