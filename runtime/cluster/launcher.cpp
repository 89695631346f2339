#include "runtime/cluster/launcher.hpp"

#include <filesystem>

#include <fcntl.h>

#include "runtime/detail/process_role.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "runtime/errors.hpp"

extern char** environ;

namespace troupe::cluster {

void to_proto(const WorkerSpec& s, proto::StartWorker::Builder b) {
  b.setActorId(s.actor_id);
  b.setExe(s.exe);
  b.setDriverAddress(s.driver_address);
  b.setMaskDevices(s.mask_devices);
  auto d = b.initDevices(static_cast<unsigned>(s.devices.size()));
  for (unsigned i = 0; i < s.devices.size(); ++i) d.set(i, s.devices[i]);
}

WorkerSpec spec_from_proto(proto::StartWorker::Reader r) {
  WorkerSpec s;
  s.actor_id = r.getActorId();
  s.exe = r.getExe().cStr();
  s.driver_address = r.getDriverAddress().cStr();
  for (auto d : r.getDevices()) s.devices.push_back(d);
  s.mask_devices = r.getMaskDevices();
  return s;
}

void to_proto(const WorkerExitInfo& i, proto::WorkerExit::Builder b) {
  b.setActorId(i.actor_id);
  b.setPid(static_cast<std::uint32_t>(i.pid));
  b.setStarted(i.started);
  b.setSignal(i.signal);
  b.setCode(i.code);
  b.setDetail(i.detail);
}

WorkerExitInfo exit_from_proto(proto::WorkerExit::Reader r) {
  WorkerExitInfo i;
  i.actor_id = r.getActorId();
  i.pid = static_cast<pid_t>(r.getPid());
  i.started = r.getStarted();
  i.signal = r.getSignal();
  i.code = r.getCode();
  i.detail = r.getDetail().cStr();
  return i;
}

std::string describe_exit(pid_t pid, int status) {
  if (WIFSIGNALED(status))
    return fmt::format("worker process {} was killed by signal {} ({})", pid, WTERMSIG(status),
                       ::strsignal(WTERMSIG(status)));
  if (WEXITSTATUS(status) == detail::kWorkerWithoutInit)
    return fmt::format("worker process {} exited with code {}: its main() never called troupe::init(argc, argv) "
                       "(call it first in main)",
                       pid, WEXITSTATUS(status));
  return fmt::format("worker process {} exited with code {}", pid, WEXITSTATUS(status));
}

WorkerLauncher::WorkerLauncher(std::string token, ExitFn on_exit)
    : token_(std::move(token)), on_exit_(std::move(on_exit)) {}

WorkerLauncher::~WorkerLauncher() {
  kill_all();
  std::list<Watcher> ts;
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    ts.swap(watchers_);
  }
  for (auto& w : ts)
    if (w.thread.joinable()) w.thread.join();
}

pid_t WorkerLauncher::launch(const WorkerSpec& spec) {
  struct stat st {};
  if (::stat(spec.exe.c_str(), &st) != 0 || !(st.st_mode & S_IXUSR))
    throw Error(fmt::format("cannot run the driver's executable {} on this node: {}", spec.exe,
                            errno ? std::strerror(errno) : "not executable"));
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("TROUPE_", 0) == 0 && kv.rfind("TROUPE_WORKER_THREADS=", 0) != 0) continue;
    if (spec.mask_devices && kv.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0) continue;
    env.push_back(std::move(kv));
  }
  env.push_back("TROUPE_CONNECT=" + spec.driver_address);
  env.push_back(fmt::format("TROUPE_ACTOR_ID={}", spec.actor_id));
  env.push_back("TROUPE_TOKEN=" + token_);
  env.push_back(fmt::format("TROUPE_PARENT_PID={}", ::getpid()));
  if (!spec.devices.empty()) {
    std::string ids;
    for (auto d : spec.devices) ids += fmt::format("{}{}", ids.empty() ? "" : ",", d);
    env.push_back(fmt::format("TROUPE_DEVICE={}", spec.devices.front()));
    env.push_back("TROUPE_DEVICES=" + ids);
    if (spec.mask_devices) env.push_back("CUDA_VISIBLE_DEVICES=" + ids);
  }
  std::vector<char*> envp;
  for (auto& kv : env) envp.push_back(kv.data());
  envp.push_back(nullptr);
  std::string exe = spec.exe, arg1 = "--troupe-worker";
  char* argv[] = {exe.data(), arg1.data(), nullptr};
  std::lock_guard lock(mu_);
  if (closing_) throw Error("node is shutting down");
  // Captured output: the worker writes into pipes a pump copies to its files.
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const bool capture = !logs_.dir.empty();
  if (capture) {
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      for (int fd : {out[0], out[1], err[0], err[1]})
        if (fd >= 0) ::close(fd);
      posix_spawn_file_actions_destroy(&fa);
      throw Error(fmt::format("cannot make the pipes for a worker's output: {}", std::strerror(errno)));
    }
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  }
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (capture) {
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
      ::close(out[0]);
      ::close(err[0]);
    }
  }
  if (rc != 0) throw Error(fmt::format("cannot start a worker from {}: {}", exe, std::strerror(rc)));
  if (capture) {
    std::erase_if(pumps_, [](const auto& p) { return p->done(); });
    pumps_.push_back(std::make_unique<LogPump>(logs_, spec.actor_id, pid, out[0], err[0]));
  }
  pids_[spec.actor_id] = pid;
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = watchers_.erase(it);
    } else {
      ++it;
    }
  }
  const auto actor = spec.actor_id;
  auto done = std::make_shared<std::atomic<bool>>(false);
  auto& w = watchers_.emplace_back();
  w.done = done;
  w.thread = std::thread([this, pid, actor, done]() {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    {
      std::lock_guard lock(mu_);
      auto it = pids_.find(actor);
      if (it != pids_.end() && it->second == pid) pids_.erase(it);
    }
    WorkerExitInfo info;
    info.actor_id = actor;
    info.pid = pid;
    info.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    info.code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    info.detail = describe_exit(pid, status);
    on_exit_(std::move(info));
    done->store(true);
  });
  return pid;
}

void WorkerLauncher::kill(std::uint64_t actor_id) {
  std::lock_guard lock(mu_);
  auto it = pids_.find(actor_id);
  if (it != pids_.end()) ::kill(it->second, SIGKILL);
}

void WorkerLauncher::kill_all() {
  std::lock_guard lock(mu_);
  for (auto& [a, pid] : pids_) ::kill(pid, SIGKILL);
}

void WorkerLauncher::capture_logs(LogConfig cfg) {
  if (!cfg.dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(cfg.dir, ec);
    if (ec) throw Error(fmt::format("cannot make the log folder {}: {}", cfg.dir, ec.message()));
  }
  std::lock_guard lock(mu_);
  logs_ = std::move(cfg);
}

std::map<std::uint64_t, pid_t> WorkerLauncher::workers() {
  std::lock_guard lock(mu_);
  return pids_;
}

}  // namespace troupe::cluster
