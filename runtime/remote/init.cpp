#include "runtime/init.hpp"

#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/detail/process_role.hpp"
#include "runtime/errors.hpp"
#include "runtime/remote/extension.hpp"

namespace troupe {

void init(int& argc, char** argv) {
  remote::install();
  // Worker mode first (it never returns): the launcher's environment says so.
  if (detail::launched_as_worker()) {
    detail::mark_init({});
    remote::run_worker_if_requested();
  }
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
  detail::mark_init(std::move(address));
}

}  // namespace troupe
