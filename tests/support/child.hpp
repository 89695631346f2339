#pragma once
// A long-running child process for integration tests (daemons): started with
// its output captured, waited on for a line, signalled, and always reaped.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace troupe::test {

class Child {
 public:
  /// Starts argv[0] with argv; stdout and stderr go to files in a temp dir.
  explicit Child(std::vector<std::string> argv);
  ~Child();  // SIGKILL + reap if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  /// Waits until stdout holds a line containing `needle`; returns that line
  /// ("" on timeout or if the child exited first).
  std::string wait_for_line(const std::string& needle, std::chrono::milliseconds limit = std::chrono::seconds(10));
  void signal(int sig);
  /// Waits for exit; returns the exit code, -signal, or -1000 on timeout.
  int wait(std::chrono::milliseconds limit = std::chrono::seconds(10));
  pid_t pid() const noexcept { return pid_; }
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string out_path_, err_path_;
};

}  // namespace troupe::test
