#include "runtime/init.hpp"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "runtime/detail/process_role.hpp"
#include "runtime/errors.hpp"
#include "runtime/remote/remote_actor.hpp"

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

void require_init(const char* what) {
  if (initialised.load()) return;
  throw UsageError(fmt::format(
      "spawning {} as a process actor: call troupe::init(argc, argv) first in main (its worker process re-runs "
      "this executable's main(), and init is what makes it host the actor instead of running your driver again)",
      what));
}
}  // namespace detail

void init(int& argc, char** argv) {
  initialised = true;
  remote::run_worker_if_requested();
  std::string address;
  if (const char* env = std::getenv("TROUPE_ADDRESS"); env && *env) address = env;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--address") == 0) {
      if (i + 1 >= argc) throw UsageError("--address needs HOST:PORT");
      address = argv[++i];
      continue;
    }
    if (std::strncmp(argv[i], "--address=", 10) == 0) {
      address = argv[i] + 10;
      continue;
    }
    argv[out++] = argv[i];
  }
  argc = out;
  argv[argc] = nullptr;
  std::lock_guard lock(mu);
  chosen() = address;
}

}  // namespace troupe
