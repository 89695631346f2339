#include "runtime/remote/remote_actor.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include "runtime/detail/registry.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"

extern char** environ;

namespace troupe::remote {

namespace asio = boost::asio;

namespace {

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error(fmt::format("cannot find this executable (/proc/self/exe): {}", std::strerror(errno)));
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string exit_text(pid_t pid, int status) {
  if (WIFSIGNALED(status))
    return fmt::format("worker process {} was killed by signal {} ({})", pid, WTERMSIG(status),
                       ::strsignal(WTERMSIG(status)));
  return fmt::format("worker process {} exited with code {}", pid, WEXITSTATUS(status));
}


// stop(): queued like a call so it keeps its place in the order.
class StopCall final : public PendingCall {
 public:
  bool deps_ready() const override { return true; }
  void on_deps(std::function<void()>) override {}
  Bytes encode() override { return {}; }
  void complete(codec::Reader&) override {}
  void fail(std::exception_ptr) override {}
  bool is_stop() const override { return true; }
};

}  // namespace

RemoteActor::RemoteActor(std::shared_ptr<asio::io_context> io, detail::PoolHandle* pool, std::string class_key,
                         Bytes ctor_args, Options opts, const char* type_name)
    : io_(std::move(io)),
      pool_(pool),
      class_key_(std::move(class_key)),
      ctor_args_(std::move(ctor_args)),
      opts_(std::move(opts)),
      type_name_(type_name),
      id_(detail::next_actor_id()) {
  detail::register_label(id_, detail::make_label(id_, opts_.name_, type_name_) + " [process]");
}

RemoteActor::~RemoteActor() {
  {
    std::lock_guard lock(mu_);
    killing_ = true;
    if (pid_) ::kill(pid_, SIGKILL);
  }
  for (auto& t : watchers_)
    if (t.joinable()) t.join();
  detail::unregister_label(id_);
}

pid_t RemoteActor::pid() const {
  std::lock_guard lock(mu_);
  return pid_;
}

void RemoteActor::start() {
  std::lock_guard lock(mu_);
  spawn_worker();
}

void RemoteActor::spawn_worker() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(fmt::format("cannot start a worker: socketpair: {}", std::strerror(errno)));
  std::string exe = self_exe();
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("TROUPE_WORKER_FD=", 0) == 0 || kv.rfind("TROUPE_DEVICE=", 0) == 0) continue;
    if (opts_.mask_devices_ && kv.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0) continue;
    env_store.push_back(std::move(kv));
  }
  env_store.push_back("TROUPE_WORKER_FD=3");
  if (opts_.device_ >= 0) {
    env_store.push_back(fmt::format("TROUPE_DEVICE={}", opts_.device_));
    if (opts_.mask_devices_) env_store.push_back(fmt::format("CUDA_VISIBLE_DEVICES={}", opts_.device_));
  }
  std::vector<char*> envp;
  for (auto& kv : env_store) envp.push_back(kv.data());
  envp.push_back(nullptr);
  std::string arg1 = "--troupe-worker";
  char* argv[] = {exe.data(), arg1.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, sv[1], 3);  // dup2 clears close-on-exec
  pid_t pid = 0;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ::close(sv[1]);
  if (rc != 0) {
    ::close(sv[0]);
    throw Error(fmt::format("cannot start a worker process from {}: {}", exe, std::strerror(rc)));
  }
  pid_ = pid;
  asio::local::stream_protocol::socket ls(asio::make_strand(*io_));
  ls.assign(asio::local::stream_protocol(), sv[0]);
  conn_ = net::Connection::make(net::Connection::Socket(std::move(ls)), fmt::format("worker {}", pid));
  std::weak_ptr<RemoteActor> weak = weak_from_this();
  conn_->start(
      [weak](net::Frame f) {
        if (auto self = weak.lock()) self->on_reply(std::move(f));
      },
      [](const std::string&) {});  // the exit status, not the socket, decides what happened
  conn_->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
    auto s = e.initSpawn();
    s.setClassKey(class_key_);
    s.setCtorArgs(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(ctor_args_.data()), ctor_args_.size()));
    s.setName(opts_.name_);
    s.setRank(static_cast<std::uint32_t>(opts_.rank_));
    s.setMeshSize(static_cast<std::uint32_t>(opts_.mesh_size_));
    s.setReentrant(opts_.reentrant_);
  }));
  watchers_.emplace_back([this, pid]() {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    on_exit(pid, status);
  });
}

void RemoteActor::call(std::unique_ptr<PendingCall> c) {
  std::unique_lock lock(mu_);
  if (dead_) {
    lock.unlock();
    c->fail(died_error());
    return;
  }
  unsent_.push_back(std::move(c));
  pump();
}

void RemoteActor::pump() {
  std::vector<std::pair<std::unique_ptr<PendingCall>, std::exception_ptr>> failed;
  while (!unsent_.empty() && conn_ && !dead_ && !waiting_deps_) {
    auto& c = unsent_.front();
    if (!c->deps_ready()) {
      waiting_deps_ = true;
      std::weak_ptr<RemoteActor> weak = weak_from_this();
      auto* pool = pool_;
      c->on_deps([weak, pool]() {
        pool->post([weak]() {
          if (auto self = weak.lock()) {
            std::lock_guard lock(self->mu_);
            self->waiting_deps_ = false;
            self->pump();
          }
        });
      });
      break;
    }
    if (c->is_stop()) {
      conn_->send(net::envelope_of<proto::WorkerEnvelope>([](proto::WorkerEnvelope::Builder e) { e.setStop(); }));
      unsent_.pop_front();
      continue;
    }
    Bytes args;
    try {
      args = c->encode();
    } catch (...) {
      failed.emplace_back(std::move(c), std::current_exception());
      unsent_.pop_front();
      continue;
    }
    std::uint64_t id = next_call_++;
    ++c->attempts;
    conn_->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
      auto r = e.initCall();
      r.setCallId(id);
      r.setMethod(c->method);
      r.setArgs(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(args.data()), args.size()));
    }));
    inflight_.emplace(id, std::move(c));
    unsent_.pop_front();
  }
  // Completing a Ref runs its continuations: never under the lock.
  if (!failed.empty())
    pool_->post([f = std::make_shared<decltype(failed)>(std::move(failed))]() {
      for (auto& [c, e] : *f) c->fail(e);
    });
}

void RemoteActor::on_reply(net::Frame f) {
  auto env = f.root<proto::WorkerEnvelope>();
  if (env.which() == proto::WorkerEnvelope::SPAWN_REPLY) {
    auto r = env.getSpawnReply();
    if (!r.getOk()) {
      std::lock_guard lock(mu_);
      failure_detail_ = r.getError().cStr();
    }
    return;
  }
  if (env.which() != proto::WorkerEnvelope::REPLY) return;
  auto r = env.getReply();
  std::unique_ptr<PendingCall> c;
  {
    std::lock_guard lock(mu_);
    auto it = inflight_.find(r.getCallId());
    if (it == inflight_.end()) return;
    c = std::move(it->second);
    inflight_.erase(it);
  }
  if (r.getOk()) {
    auto data = r.getResult();
    codec::Reader reader({reinterpret_cast<const std::byte*>(data.begin()), data.size()});
    try {
      c->complete(reader);
    } catch (...) {
      c->fail(std::current_exception());
    }
  } else {
    c->fail(std::make_exception_ptr(RemoteError(r.getErrorType().cStr(), r.getErrorMessage().cStr())));
  }
}

void RemoteActor::on_exit(pid_t pid, int status) {
  std::vector<std::unique_ptr<PendingCall>> to_fail;
  std::exception_ptr err;
  std::optional<DownEvent> restart_event;
  {
    std::lock_guard lock(mu_);
    if (pid != pid_) return;
    pid_ = 0;
    if (conn_) conn_->close("worker exited");
    conn_.reset();
    std::string detail = exit_text(pid, status);
    if (!failure_detail_.empty()) detail = fmt::format("{} ({})", failure_detail_, detail);
    failure_detail_.clear();
    const bool clean_stop = stopping_ && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    const bool can_restart = !killing_ && !clean_stop && !dead_ &&
                             (opts_.max_restarts_ < 0 || restarts_ < opts_.max_restarts_);
    if (killing_) {
      die(kill_cause_, kill_cause_ == DeathCause::killed ? detail : std::string());
    } else if (clean_stop) {
      die(DeathCause::stopped, {});
    } else if (!can_restart) {
      die(DeathCause::failed, detail);
    } else {
      restart_event = DownEvent{id_, opts_.name_, DeathCause::failed, detail, true, restarts_};
      ++restarts_;
      err = std::make_exception_ptr(ActorDied(id_, opts_.name_, DeathCause::failed, detail));
      // Calls in flight go first, in their original order, if they may be retried.
      std::deque<std::unique_ptr<PendingCall>> retry;
      for (auto& [id, c] : inflight_) {
        if (opts_.max_call_retries_ < 0 || c->attempts <= opts_.max_call_retries_)
          retry.push_back(std::move(c));
        else
          to_fail.push_back(std::move(c));
      }
      inflight_.clear();
      for (auto it = retry.rbegin(); it != retry.rend(); ++it) unsent_.push_front(std::move(*it));
      try {
        spawn_worker();
        pump();
      } catch (const std::exception& e) {
        die(DeathCause::failed, fmt::format("{}; restart failed: {}", detail, e.what()));
      }
    }
  }
  for (auto& c : to_fail) c->fail(err);
  if (restart_event) notify(*restart_event);
}

void RemoteActor::die(DeathCause cause, std::string detail) {
  if (dead_) return;
  cause_ = cause;
  detail_ = std::move(detail);
  dead_ = true;
  down_.set_value();  // nothing but wait_dead waits on it: no continuation runs under the lock
  auto err = died_error();
  auto calls = std::make_shared<std::vector<std::unique_ptr<PendingCall>>>();
  for (auto& [id, c] : inflight_) calls->push_back(std::move(c));
  for (auto& c : unsent_) calls->push_back(std::move(c));
  inflight_.clear();
  unsent_.clear();
  auto waiters = std::make_shared<std::vector<Promise<void>>>(std::move(stop_waiters_));
  stop_waiters_.clear();
  pool_->post([calls, waiters, err]() {
    for (auto& c : *calls) c->fail(err);
    for (auto& w : *waiters) w.set_value();
  });
  auto fns = std::move(monitors_);
  monitors_.clear();
  DownEvent ev{id_, opts_.name_, cause_, detail_, false, restarts_};
  pool_->post([fns = std::move(fns), ev]() {
    for (auto& fn : fns) fn(ev);
  });
}

std::exception_ptr RemoteActor::died_error() const {
  return std::make_exception_ptr(ActorDied(id_, opts_.name_, cause_, detail_));
}

void RemoteActor::notify(DownEvent ev) {
  std::vector<MonitorFn> fns;
  {
    std::lock_guard lock(mu_);
    fns = monitors_;
  }
  pool_->post([fns = std::move(fns), ev = std::move(ev)]() {
    for (auto& fn : fns) fn(ev);
  });
}

void RemoteActor::add_monitor(MonitorFn fn) {
  std::unique_lock lock(mu_);
  if (!dead_) {
    monitors_.push_back(std::move(fn));
    return;
  }
  DownEvent ev{id_, opts_.name_, cause_, detail_, false, restarts_};
  lock.unlock();
  pool_->post([fn = std::move(fn), ev]() { fn(ev); });
}

Ref<void> RemoteActor::stop() {
  Promise<void> p;
  auto ref = p.ref();
  std::lock_guard lock(mu_);
  if (dead_) {
    p.set_value();
    return ref;
  }
  stopping_ = true;
  stop_waiters_.push_back(std::move(p));
  unsent_.push_back(std::make_unique<StopCall>());
  pump();
  return ref;
}

void RemoteActor::shutdown() {
  std::lock_guard lock(mu_);
  if (dead_) return;
  kill_cause_ = DeathCause::runtime_shutdown;
  killing_ = true;
  if (pid_)
    ::kill(pid_, SIGKILL);
  else
    die(DeathCause::runtime_shutdown, {});
}

void RemoteActor::wait_dead(std::chrono::milliseconds limit) { (void)down_.ref().wait_for(limit); }

void RemoteActor::kill() {
  std::lock_guard lock(mu_);
  if (dead_) return;
  killing_ = true;
  if (pid_)
    ::kill(pid_, SIGKILL);
  else
    die(DeathCause::killed, {});
}

Ref<void> stop_of(RemoteActor& r) { return r.stop(); }
void kill_of(RemoteActor& r) { r.kill(); }
bool alive_of(const RemoteActor& r) noexcept { return r.alive(); }
std::uint64_t id_of(const RemoteActor& r) noexcept { return r.id(); }
const std::string& name_of(const RemoteActor& r) noexcept { return r.name(); }
std::size_t rank_of(const RemoteActor& r) noexcept { return r.rank(); }

}  // namespace troupe::remote
