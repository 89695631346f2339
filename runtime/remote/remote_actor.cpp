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

#include "runtime/codec/capnp.hpp"
#include "runtime/detail/registry.hpp"
#include "runtime/remote/link_hooks.hpp"
#include "runtime/remote/wire.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::remote {

namespace asio = boost::asio;

namespace {

constexpr int kAlive = static_cast<int>(proto::ActorState::ALIVE);
constexpr int kDead = static_cast<int>(proto::ActorState::DEAD);


// stop() and group membership: queued like calls so they keep their place.
class ControlCall final : public PendingCall {
 public:
  explicit ControlCall(kj::Array<capnp::word> frame) : frame_(std::move(frame)) {}
  bool deps_ready() const override { return true; }
  void on_deps(std::function<void()>) override {}
  Bytes encode() override { return {}; }
  void complete(codec::Reader&) override {}
  void fail(std::exception_ptr) override {}
  kj::Array<capnp::word> take() { return std::move(frame_); }

 private:
  kj::Array<capnp::word> frame_;
};

}  // namespace

RemoteActor::RemoteActor(std::shared_ptr<asio::io_context> io, detail::PoolHandle* pool, std::string class_key,
                         Bytes ctor_args, Options opts, const char* type_name,
                         std::shared_ptr<cluster::ClusterClient> cluster)
    : io_(std::move(io)),
      pool_(pool),
      class_key_(std::move(class_key)),
      ctor_args_(std::move(ctor_args)),
      opts_(std::move(opts)),
      type_name_(type_name),
      id_(detail::next_actor_id()),
      cluster_(std::move(cluster)) {
  detail::register_label(id_, detail::make_label(id_, opts_.name_, type_name_) + " [process]");
}

RemoteActor::~RemoteActor() {
  {
    std::lock_guard lock(mu_);
    // The directory says why, not just "killed": the driver let go of it.
    if (!killing_ && !dead_) released_ = true;
    killing_ = true;
    if (pid_) ::kill(pid_, SIGKILL);
    if (remote_ && !dead_ && cluster_id_) cluster_->kill_worker(cluster_id_);
    if (conn_ && !routed_target_) conn_->close("actor handle destroyed");  // a routed one shares the worker's
  }
  for (auto& t : watchers_)
    if (t.joinable()) t.join();
  {
    // The exit may still be waiting for the socket to drain: nobody will
    // read it now, so every call still here fails before it is destroyed.
    std::lock_guard lock(mu_);
    if (!dead_) {
      drain_timer_.reset();
      lost_timer_.reset();
      pending_exit_.reset();
      die(kill_cause_, released_ ? kReleasedCause : "");
    }
  }
  if (cluster_id_) cluster_->forget(cluster_id_);
  detail::unregister_label(id_);
}

int RemoteActor::pid() const {
  std::lock_guard lock(mu_);
  return worker_pid_ ? worker_pid_ : pid_;
}

std::uint64_t RemoteActor::node() const {
  std::lock_guard lock(mu_);
  return node_;
}

std::vector<unsigned> RemoteActor::devices() const {
  std::lock_guard lock(mu_);
  return devices_;
}

std::uint64_t RemoteActor::cluster_id() const {
  std::lock_guard lock(mu_);
  return cluster_id_;
}

void RemoteActor::route_to(std::uint64_t target, std::shared_ptr<net::Connection> driver) {
  std::lock_guard lock(mu_);
  routed_target_ = target;
  conn_ = std::move(driver);
  // The handle names the driver's actor: its id is the one the driver uses.
  detail::unregister_label(id_);
  id_ = target;
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
  // A socket already at EOF would swallow calls: they wait for the restart.
  while (!unsent_.empty() && conn_ && !conn_drained_ && !dead_ && !waiting_deps_) {
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
    if (auto* ctl = dynamic_cast<ControlCall*>(c.get())) {
      conn_->send(ctl->take());
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
      r.setTarget(routed_target_);
      r.setTraceFlow(c->trace_flow);
      r.setArgs(codec::data_of(args));
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
  switch (env.which()) {
    case proto::WorkerEnvelope::STORE_SET:
    case proto::WorkerEnvelope::STORE_GET:
    case proto::WorkerEnvelope::JOIN_REQUEST: {
      // The collective layer's business (runtime/coll/link.cpp).
      std::weak_ptr<net::Connection> back;
      {
        std::lock_guard lock(mu_);
        back = conn_;
      }
      if (auto hook = link_hooks().from_worker)
        hook(*this, env, [back](kj::Array<capnp::word> frame) {
          if (auto conn = back.lock()) conn->send(std::move(frame));
        });
      else
        fmt::print(stderr, "troupe: actor {} asked for a collective group, but this program has no collectives\n",
                   id_);
      return;
    }
    case proto::WorkerEnvelope::STATS: {
      // The worker's counters. A real frame is a few KiB; anything past 1
      // MiB is dropped. Its actor's steps stay here (progress()); a full
      // frame (every second) goes on to the head as it came, with this
      // actor's id: the head decodes it and takes it under that id.
      if (env.getStats().size() > (1u << 20)) return;
      bool full = true;
      try {
        auto sample = codec::from_bytes<telemetry::ProcessSample>(codec::bytes_of(env.getStats()));
        full = !sample.progress_only;
        if (!sample.actors.empty()) {
          std::lock_guard lock(progress_mu_);
          progress_ = sample.actors.front().progress;
        }
      } catch (const std::exception&) {
        return;  // undecodable: nothing to keep or pass on
      }
      if (cluster_ && full) cluster_->report_samples(id_, env.getStats());
      return;
    }
    case proto::WorkerEnvelope::TRACE_DUMP:
      if (cluster_ && cluster_id_) cluster_->trace_dump(cluster_id_, env.getTraceDump());
      return;
    default:
      break;
  }
  if (env.which() == proto::WorkerEnvelope::CALL) {
    // The worker calls an actor handle we sent it: make the call here.
    auto c = env.getCall();
    std::weak_ptr<net::Connection> back;
    {
      std::lock_guard lock(mu_);
      back = conn_;
    }
    const auto target = c.getTarget(), call = c.getCallId();
    auto args = c.getArgs();
    codec::Reader reader(codec::bytes_of(args));
    detail::invoke_export(target, c.getMethod(), reader, [back, target, call](std::exception_ptr e, Bytes result) {
      if (auto conn = back.lock()) conn->send(reply_frame(call, target, e, result));
    });
    return;
  }
  if (env.which() == proto::WorkerEnvelope::SPAWN_REPLY) {
    auto r = env.getSpawnReply();
    std::lock_guard lock(mu_);
    if (!r.getOk()) {
      failure_detail_ = r.getError().cStr();
    } else {
      worker_pid_ = static_cast<pid_t>(r.getPid());
      if (!dead_) cluster_->report(cluster_id_, kAlive, r.getPid(), {}, static_cast<std::uint32_t>(restarts_));
      if (!dead_ && cluster_id_)  // `troupe trace` asks it through control(), in order with its calls
        cluster_->add_tracee(cluster_id_, [weak = weak_from_this()](std::uint32_t ms) {
          if (auto self = weak.lock())
            self->control(net::envelope_of<proto::WorkerEnvelope>(
                [&](proto::WorkerEnvelope::Builder e) { e.setTraceStart(ms); }));
        });
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
    if (!r.getOk() && std::string_view(r.getErrorType().cStr()) == kCulpritType) {
      // The worker is about to exit; its exit decides between restart and death.
      it->second->culprit = true;
      return;
    }
    c = std::move(it->second);
    inflight_.erase(it);
  }
  if (r.getOk()) {
    auto data = r.getResult();
    codec::Reader reader(codec::bytes_of(data));
    try {
      c->complete(reader);
    } catch (...) {
      c->fail(std::current_exception());
    }
  } else {
    c->fail(std::make_exception_ptr(RemoteError(r.getErrorType().cStr(), r.getErrorMessage().cStr())));
  }
}

void RemoteActor::die(DeathCause cause, std::string detail) {
  if (dead_) return;
  cause_ = cause;
  detail_ = std::move(detail);
  dead_ = true;
  if (cluster_id_) cluster_->report(cluster_id_, kDead, 0, detail_.empty() ? to_string(cause) : detail_, static_cast<std::uint32_t>(restarts_));
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
  // Last: a runtime shutting down waits on this and then stops the pool, so
  // the failures above must already be queued there.
  down_.set_value();  // nothing but wait_dead waits on it: no continuation runs under the lock
}

std::exception_ptr RemoteActor::death_error() const {
  std::lock_guard lock(mu_);
  return died_error();
}

std::exception_ptr RemoteActor::died_error() const {
  return std::make_exception_ptr(ActorDied(id_, opts_.name_, cause_, detail_, RestartInfo{0, opts_.max_restarts_}));
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
  if (routed_target_)
    return Ref<void>::from_error(std::make_exception_ptr(
        UsageError("stop() through a handle passed into a worker: only the actor's owner can stop it")));
  if (dead_) {
    p.set_value();
    return ref;
  }
  stopping_ = true;
  stop_waiters_.push_back(std::move(p));
  unsent_.push_back(std::make_unique<ControlCall>(
      net::envelope_of<proto::WorkerEnvelope>([](proto::WorkerEnvelope::Builder e) { e.setStop(); })));
  pump();
  return ref;
}

void RemoteActor::shutdown() {
  std::lock_guard lock(mu_);
  if (dead_) return;
  kill_cause_ = DeathCause::runtime_shutdown;
  killing_ = true;
  if (pid_) {
    ::kill(pid_, SIGKILL);  // the watcher reports the exit
    return;
  }
  // A remote worker (or none yet): tell its node, drop the socket (the worker
  // exits when its driver goes), and do not wait for news.
  if (cluster_id_) cluster_->kill_worker(cluster_id_);
  ++gen_;
  if (conn_) conn_->close("runtime shutdown");
  conn_.reset();
  die(DeathCause::runtime_shutdown, {});
}

void RemoteActor::wait_dead(std::chrono::milliseconds limit) { (void)down_.ref().wait_for(limit); }

void RemoteActor::kill() {
  std::lock_guard lock(mu_);
  if (routed_target_) throw UsageError("kill() through a handle passed into a worker: only the actor's owner can kill it");
  if (dead_) return;
  killing_ = true;
  if (pid_) {
    ::kill(pid_, SIGKILL);
  } else if (remote_) {
    // Its node kills it and reports the exit; closing the socket makes the
    // worker exit even if that news is slow.
    cluster_->kill_worker(cluster_id_);
    if (conn_) conn_->close("killed");
    if (!conn_) {
      ++gen_;
      die(DeathCause::killed, {});
    }
  } else {
    die(DeathCause::killed, {});
  }
}

void RemoteActor::control(kj::Array<capnp::word> frame) {
  std::lock_guard lock(mu_);
  if (dead_ || routed_target_) return;
  unsent_.push_back(std::make_unique<ControlCall>(std::move(frame)));
  pump();
}

}  // namespace troupe::remote
