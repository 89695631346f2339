#pragma once
// A node's worker processes: started for the head by re-running the driver's
// executable in worker mode, watched until they exit, and reported.
//
// A started worker dials back to its driver (TROUPE_CONNECT) with the cluster
// token and serves one actor; it dies with its daemon (PR_SET_PDEATHSIG) so a
// dead node leaves no orphan workers talking to drivers.
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proto/control.capnp.h"
#include "runtime/cluster/logs.hpp"

namespace troupe::cluster {

struct WorkerSpec {
  std::uint64_t actor_id = 0;
  std::string exe;             ///< the driver's executable
  std::string driver_address;  ///< host:port the worker dials back to
  std::vector<unsigned> devices;
  bool mask_devices = false;
};

struct WorkerExitInfo {
  std::uint64_t actor_id = 0;
  pid_t pid = 0;
  bool started = true;
  int signal = 0, code = 0;
  std::string detail;
};

void to_proto(const WorkerSpec& s, proto::StartWorker::Builder b);
WorkerSpec spec_from_proto(proto::StartWorker::Reader r);
void to_proto(const WorkerExitInfo& i, proto::WorkerExit::Builder b);
WorkerExitInfo exit_from_proto(proto::WorkerExit::Reader r);

/// "worker process 123 was killed by signal 9 (Killed)" / "... exited with code 3".
std::string describe_exit(pid_t pid, int wait_status);

class WorkerLauncher {
 public:
  using ExitFn = std::function<void(WorkerExitInfo)>;
  /// `on_exit` runs on a watcher thread for every worker that was started.
  WorkerLauncher(std::string token, ExitFn on_exit);
  ~WorkerLauncher();  ///< kills what is left and joins the watchers
  WorkerLauncher(const WorkerLauncher&) = delete;
  WorkerLauncher& operator=(const WorkerLauncher&) = delete;

  /// Starts the worker; returns its pid. Throws Error (missing executable, ...).
  pid_t launch(const WorkerSpec& spec);
  /// SIGKILL to the worker hosting `actor_id`, if there is one.
  void kill(std::uint64_t actor_id);
  void kill_all();
  /// Capture each worker's stdout and stderr into capped files in cfg.dir
  /// (created); before the first launch. Without it they inherit ours.
  void capture_logs(LogConfig cfg);
  const LogConfig& logs() const noexcept { return logs_; }
  /// The live workers: actor id -> pid.
  std::map<std::uint64_t, pid_t> workers();

 private:
  std::string token_;
  ExitFn on_exit_;
  std::mutex mu_;
  std::map<std::uint64_t, pid_t> pids_;
  struct Watcher {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Watcher> watchers_;  // finished ones are joined at the next launch
  LogConfig logs_;
  std::list<std::unique_ptr<LogPump>> pumps_;  // finished ones are dropped at the next launch
  bool closing_ = false;
};

}  // namespace troupe::cluster
