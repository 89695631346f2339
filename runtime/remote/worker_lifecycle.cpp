// A process actor's workers: placing them, starting one here (socketpair) or
// awaiting one a node started (dial-back), and what happens when one exits.
#include "runtime/codec/capnp.hpp"
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
constexpr int kRestarting = static_cast<int>(proto::ActorState::RESTARTING);
// A remote worker whose socket closed but whose exit no node reported (the
// head is gone, say) is declared dead after this long.
constexpr auto kLostWorkerGrace = std::chrono::seconds(10);
// A worker known to have exited whose socket has not reached EOF (a child of
// it holds the descriptor, say) is handled as gone after this long.
constexpr auto kDrainGrace = std::chrono::seconds(2);
}  // namespace

void RemoteActor::start() {
  std::lock_guard lock(mu_);
  spawn_worker();
}

void RemoteActor::spawn_worker() {
  cluster::PlaceRequest pr;
  pr.actor_id = cluster_id_;
  pr.proposed_id = id_;
  pr.class_name = type_name_;
  pr.name = opts_.name_;
  pr.resources = opts_.resources_;
  pr.group = opts_.group_;
  pr.bundle = opts_.bundle_;
  pr.device = opts_.device_;
  pr.mask_devices = opts_.mask_devices_;
  pr.max_restarts = opts_.max_restarts_;
  cluster::PlaceResult placed = cluster_->place(pr);
  if (!cluster_id_) {
    cluster_id_ = placed.actor_id;
    if (id_ != cluster_id_) {
      // Another driver holds our id on this cluster: take the head's, so the
      // driver names the actor as `troupe actors` does.
      detail::unregister_label(id_);
      id_ = detail::take_actor_id(cluster_id_);
      detail::register_label(id_, detail::make_label(id_, opts_.name_, type_name_) + " [process]");
    }
    std::weak_ptr<RemoteActor> weak = weak_from_this();
    auto* pool = pool_;
    cluster_->watch_exits(cluster_id_, [weak, pool](const cluster::WorkerExitInfo& info, bool node_died, bool final) {
      pool->post([weak, info, node_died, final]() {
        if (auto self = weak.lock()) self->on_remote_exit(info, node_died, final);
      });
    });
  }
  node_ = placed.node;
  devices_ = placed.devices;
  worker_pid_ = 0;
  ++gen_;
  conn_drained_ = false;
  pending_exit_.reset();
  drain_timer_.reset();
  if (placed.local) {
    remote_ = false;
    try {
      launch_local();
    } catch (const std::exception& e) {
      cluster::WorkerExitInfo info;
      info.actor_id = cluster_id_;
      info.started = false;
      info.detail = e.what();
      cluster_->report_exit(info);
      throw;
    }
    return;
  }
  remote_ = true;
  conn_.reset();
  std::weak_ptr<RemoteActor> weak = weak_from_this();
  const auto gen = gen_;
  cluster_->expect_worker(cluster_id_, [weak, gen](std::shared_ptr<net::Connection> c) {
    if (auto self = weak.lock())
      self->attach(gen, std::move(c));
    else
      c->close("actor gone");
  });
}

void RemoteActor::launch_local() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw Error(fmt::format("cannot start a worker: socketpair: {}", std::strerror(errno)));
  std::string exe = cluster::ClusterClient::self_exe();
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("TROUPE_WORKER_FD=", 0) == 0 || kv.rfind("TROUPE_DEVICE", 0) == 0 ||
        kv.rfind("TROUPE_CONNECT=", 0) == 0)
      continue;
    if (opts_.mask_devices_ && kv.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0) continue;
    env_store.push_back(std::move(kv));
  }
  env_store.push_back("TROUPE_WORKER_FD=3");
  if (!devices_.empty()) {
    std::string ids;
    for (auto d : devices_) ids += fmt::format("{}{}", ids.empty() ? "" : ",", d);
    env_store.push_back(fmt::format("TROUPE_DEVICE={}", devices_.front()));
    env_store.push_back("TROUPE_DEVICES=" + ids);
    if (opts_.mask_devices_) env_store.push_back("CUDA_VISIBLE_DEVICES=" + ids);
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
      // The exit status, not the socket, decides what happened; EOF says
      // every reply the worker sent has been read.
      [weak, gen = gen_](const std::string&) {
        if (auto self = weak.lock()) self->on_local_close(gen);
      });
  send_spawn();
  watchers_.emplace_back([this, pid]() {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    on_local_exit(pid, status);
  });
}

void RemoteActor::send_spawn() {
  conn_->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
    auto s = e.initSpawn();
    s.setClassKey(class_key_);
    s.setCtorArgs(codec::data_of(ctor_args_));
    s.setName(opts_.name_);
    s.setRank(static_cast<std::uint32_t>(opts_.rank_));
    s.setMeshSize(static_cast<std::uint32_t>(opts_.mesh_size_));
    s.setReentrant(opts_.reentrant_);
    s.setActorId(id_);
  }));
}

void RemoteActor::attach(std::uint64_t gen, std::shared_ptr<net::Connection> c) {
  std::lock_guard lock(mu_);
  if (gen != gen_ || dead_ || !remote_ || conn_) {
    c->close("not wanted");
    return;
  }
  conn_ = c;
  std::weak_ptr<RemoteActor> weak = weak_from_this();
  conn_->start(
      [weak](net::Frame f) {
        if (auto self = weak.lock()) self->on_reply(std::move(f));
      },
      [weak, gen](const std::string&) {
        if (auto self = weak.lock()) self->on_remote_close(gen);
      });
  send_spawn();
  pump();
}

// A remote worker's socket closed. Its node reports the exit through the head;
// if that news never comes (the head or the node is gone), give up after a grace.
void RemoteActor::on_remote_close(std::uint64_t gen) {
  std::lock_guard lock(mu_);
  if (gen != gen_ || dead_) return;
  conn_drained_ = true;
  if (finish_pending_exit()) return;
  lost_timer_ = std::make_unique<asio::steady_timer>(*io_, kLostWorkerGrace);
  std::weak_ptr<RemoteActor> weak = weak_from_this();
  lost_timer_->async_wait([weak, gen](boost::system::error_code ec) {
    if (ec) return;
    auto self = weak.lock();
    if (!self) return;
    std::unique_lock lock(self->mu_);
    if (gen != self->gen_ || self->dead_) return;
    if (self->cluster_id_) self->cluster_->kill_worker(self->cluster_id_);
    self->handle_exit(fmt::format("lost the connection to its worker on node {} and no exit was reported within {} s",
                                  self->node_, kLostWorkerGrace.count()),
                      false);
  });
}

void RemoteActor::on_local_close(std::uint64_t gen) {
  std::lock_guard lock(mu_);
  if (gen != gen_ || dead_) return;
  conn_drained_ = true;
  finish_pending_exit();
}

bool RemoteActor::finish_pending_exit() {
  if (!pending_exit_) return false;
  auto [detail, clean] = std::move(*pending_exit_);
  handle_exit(std::move(detail), clean);
  return true;
}

// Under mu_. A worker's exit is known (its status here, or its node's report)
// but replies it sent before exiting may still sit in the socket: a call that
// completed must not be failed or retried. Act once the socket is drained.
void RemoteActor::worker_gone(std::string detail, bool clean) {
  if (!conn_ || conn_drained_) return handle_exit(std::move(detail), clean);
  pending_exit_.emplace(std::move(detail), clean);
  drain_timer_ = std::make_unique<asio::steady_timer>(*io_, kDrainGrace);
  std::weak_ptr<RemoteActor> weak = weak_from_this();
  drain_timer_->async_wait([weak, gen = gen_](boost::system::error_code ec) {
    if (ec) return;
    auto self = weak.lock();
    if (!self) return;
    std::lock_guard lock(self->mu_);
    if (gen == self->gen_ && !self->dead_) self->finish_pending_exit();
  });
}

void RemoteActor::on_local_exit(pid_t pid, int status) {
  std::unique_lock lock(mu_);
  if (pid != pid_) return;
  pid_ = 0;
  cluster::WorkerExitInfo info;
  info.actor_id = cluster_id_;
  info.pid = pid;
  info.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  info.code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  info.detail = cluster::describe_exit(pid, status);
  cluster_->report_exit(info);
  worker_gone(info.detail, WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

void RemoteActor::on_remote_exit(const cluster::WorkerExitInfo& info, bool node_died, bool final) {
  std::unique_lock lock(mu_);
  if (dead_ || info.actor_id != cluster_id_) return;
  if (final) {
    // The head ended it: no restart, whatever the policy.
    killing_ = true;
    kill_cause_ = DeathCause::killed;
    if (pid_) {
      failure_detail_ = info.detail;
      ::kill(pid_, SIGKILL);  // our own worker: its watcher finishes the death
      return;
    }
    worker_gone(info.detail, false);
    return;
  }
  if (!remote_) return;
  if (worker_pid_ && info.pid && info.pid != worker_pid_) return;  // an earlier worker's news
  (void)node_died;
  worker_gone(info.detail, info.started && info.signal == 0 && info.code == 0);
}

// Under mu_. The worker is gone: decide between death and a restart.
void RemoteActor::handle_exit(std::string detail, bool clean) {
  ++gen_;  // whatever the old worker still sends is stale now
  lost_timer_.reset();
  drain_timer_.reset();
  pending_exit_.reset();
  if (conn_) conn_->close("worker exited");
  conn_.reset();
  worker_pid_ = 0;
  if (!failure_detail_.empty()) detail = fmt::format("{} ({})", failure_detail_, detail);
  failure_detail_.clear();
  const bool clean_stop = stopping_ && clean;
  const bool can_restart =
      !killing_ && !clean_stop && !dead_ && (opts_.max_restarts_ < 0 || restarts_ < opts_.max_restarts_);
  if (killing_) {
    die(kill_cause_, released_ ? std::string(kReleasedCause)
                     : kill_cause_ == DeathCause::killed ? detail
                                                         : std::string());
    return;
  }
  if (clean_stop) {
    die(DeathCause::stopped, {});
    return;
  }
  if (!can_restart) {
    die(DeathCause::failed, detail);
    return;
  }
  DownEvent restart_event{id_, opts_.name_, DeathCause::failed, detail, true, restarts_};
  // Say so on stderr, as Ray does: a restart that nobody sees hides a crash.
  fmt::print(stderr, "troupe: {} lost its worker ({}); restarting it ({} of {})\n", detail::actor_label(id_), detail,
             restarts_ + 1, opts_.max_restarts_ < 0 ? std::string("unlimited") : std::to_string(opts_.max_restarts_));
  ++restarts_;
  cluster_->report(cluster_id_, kRestarting, 0, detail, static_cast<std::uint32_t>(restarts_));
  const RestartInfo restart{restarts_, opts_.max_restarts_, false};
  auto err = std::make_exception_ptr(ActorDied(id_, opts_.name_, DeathCause::failed, detail, restart));
  // Calls in flight go first, in their original order, if they may be retried;
  // the one that raised the actor's failure never is.
  auto to_fail = std::make_shared<std::vector<std::pair<std::unique_ptr<PendingCall>, std::exception_ptr>>>();
  std::deque<std::unique_ptr<PendingCall>> retry;
  for (auto& [id, c] : inflight_) {
    if (c->culprit) {
      auto e = std::make_exception_ptr(ActorDied(id_, opts_.name_, DeathCause::failed, detail,
                                                 RestartInfo{restarts_, opts_.max_restarts_, true}));
      to_fail->emplace_back(std::move(c), e);
    } else if (opts_.max_call_retries_ < 0 || c->attempts <= opts_.max_call_retries_) {
      retry.push_back(std::move(c));
    } else {
      to_fail->emplace_back(std::move(c), err);
    }
  }
  inflight_.clear();
  for (auto it = retry.rbegin(); it != retry.rend(); ++it) unsent_.push_front(std::move(*it));
  try {
    spawn_worker();
    pump();
  } catch (const std::exception& e) {
    die(DeathCause::failed, fmt::format("{}; restart failed: {}", detail, e.what()));
  }
  if (!to_fail->empty())
    pool_->post([to_fail]() {
      for (auto& [c, e] : *to_fail) c->fail(e);
    });
  auto fns = monitors_;
  pool_->post([fns = std::move(fns), restart_event]() {
    for (auto& fn : fns) fn(restart_event);
  });
}

}  // namespace troupe::remote
