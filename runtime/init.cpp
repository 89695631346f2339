#include "runtime/init.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "runtime/errors.hpp"
#include "runtime/remote/remote_actor.hpp"

namespace troupe {

namespace {
std::mutex mu;
std::string& chosen() {
  static std::string address;
  return address;
}
}  // namespace

namespace detail {
std::string default_address() {
  std::lock_guard lock(mu);
  return chosen();
}
}  // namespace detail

void init(int& argc, char** argv) {
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
