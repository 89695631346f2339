#pragma once
// Runs a real process for integration tests: arguments, exit status, output,
// and a hard time limit (the child is killed, never left hanging).
#include <chrono>
#include <string>
#include <vector>

namespace troupe::test {

struct ProcessResult {
  int exit_code = -1;  ///< exit status, or -signal if killed by a signal
  bool timed_out = false;
  std::string out, err;
};

/// `env`: NAME=value entries added to (or replacing those in) this process's environment.
ProcessResult run_process(const std::vector<std::string>& argv,
                          std::chrono::milliseconds limit = std::chrono::seconds(60),
                          const std::vector<std::string>& env = {});

/// Path of a built program in build/bin (from TROUPE_BIN_DIR, set by CTest).
std::string bin(const std::string& name);

}  // namespace troupe::test
