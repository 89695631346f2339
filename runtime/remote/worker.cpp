// Worker mode: this process was started by a driver to host one actor. It
// runs an ordinary troupe runtime, spawns the actor there, and turns frames
// from the driver into local calls (so mailbox order, coroutines and
// lifecycle are exactly those of a local actor).
#include <cxxabi.h>
#include <signal.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <unistd.h>

#include <future>

#include <cstdlib>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include "runtime/cluster/connect.hpp"
#include "runtime/codec/capnp.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/detail/actor_registry.hpp"
#include "runtime/remote/handles.hpp"
#include "runtime/detail/executor.hpp"
#include "runtime/remote/link_hooks.hpp"
#include "runtime/remote/remote_actor.hpp"
#include "runtime/remote/wire.hpp"
#include "runtime/remote/worker_link.hpp"
#include "runtime/runtime.hpp"
#include "runtime/trace.hpp"

namespace troupe::remote {

namespace asio = boost::asio;
using detail::FactoryEntry;
using detail::MethodEntry;
using detail::registry;

namespace {

struct Worker;

struct Ticker : std::enable_shared_from_this<Ticker> {
  Ticker(asio::io_context& io, Worker* w) : timer(io), worker(w) {}
  void arm();
  asio::steady_timer timer;
  Worker* worker;
  std::atomic<bool> off{false};
  int ticks = 0;              // of 50 ms: every 20th sends the full counters
  std::uint64_t noted = 0;    // the actor's steps when progress was last sent
};

struct Worker {
  Runtime rt{RuntimeOptions{.threads = 0, .spin_us = 0}};  // TROUPE_WORKER_THREADS overrides
  std::shared_ptr<net::Connection> conn;
  std::any actor;
  const FactoryEntry* factory = nullptr;
  const std::vector<MethodEntry>* methods = nullptr;
  Promise<int> done;
  std::atomic<int> exit_code{0};
  std::atomic<bool> stopping{false};

  void reply(std::uint64_t id, std::exception_ptr e, const Bytes& result) {
    // A call the local actor could not serve because it died gets no answer:
    // the worker is about to exit and the driver applies its retry policy
    // (max_call_retries) to every call in flight. The call that raised the
    // failure is answered (kCulpritType), so the driver never retries it.
    if (e) {
      auto info = describe(e);
      if (info.actor_failure && !info.culprit) return;
    }
    conn->send(reply_frame(id, 0, e, result));
  }

  void spawn(proto::SpawnActor::Reader s) {
    auto refuse = [&](const std::string& why) {
      conn->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder env) {
        auto r = env.initSpawnReply();
        r.setOk(false);
        r.setError(why);
      }));
      exit_code = 2;
      conn->finish();
    };
    factory = registry().factory(s.getClassKey().cStr());
    if (!factory)
      return refuse(fmt::format("this executable has no factory for {}: is the class registered with TROUPE_ACTOR "
                                "and spawned with these argument types?",
                                s.getClassKey().cStr()));
    methods = registry().methods(factory->type);
    Options o;
    o.name_ = s.getName().cStr();
    o.rank_ = s.getRank();
    o.mesh_size_ = s.getMeshSize();
    o.reentrant_ = s.getReentrant();
    o.id_ = s.getActorId();
    actor_id = o.id_;
    try {
      auto args = s.getCtorArgs();
      codec::Reader r(codec::bytes_of(args));
      actor = factory->spawn(rt, r, o);
    } catch (const std::exception& e) {
      return refuse(fmt::format("cannot spawn {}: {}", s.getClassKey().cStr(), e.what()));
    }
    factory->watch(actor, [this](std::string why) {
      if (exit_code == 0 && !stopping) {
        exit_code = 3;  // the actor died of its own accord: tell the driver why, then exit
        conn->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder env) {
          auto r = env.initSpawnReply();
          r.setOk(false);
          r.setError(why);
        }));
      }
      conn->finish();
    });
    conn->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder env) {
      auto r = env.initSpawnReply();
      r.setOk(true);
      r.setPid(static_cast<std::uint32_t>(::getpid()));
    }));
  }

  std::uint64_t actor_id = 0;  // the hosted actor's (set by spawn)

  // Every second, the actor's and the groups' counters; in between, every
  // 50 ms while the actor notes training steps, its counters alone (the
  // driver scores stragglers from them: `progress_only`). Returns the steps
  // the actor has noted.
  std::uint64_t send_stats(bool full, std::uint64_t noted) {
    telemetry::ProcessSample sample;
    for (auto& a : rt.actor_samples())
      if (a.id == actor_id) sample.actors.push_back(std::move(a));
    const std::uint64_t steps = sample.actors.empty() ? 0 : sample.actors.front().progress.steps;
    if (!full && steps == noted) return steps;
    sample.progress_only = !full;
    if (auto groups = link_hooks().group_samples; groups && full) sample.groups = groups();
    if (sample.actors.empty() && sample.groups.empty()) return steps;
    const auto bytes = codec::to_bytes(sample);
    conn->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder env) {
      env.setStats(codec::data_of(bytes));
    }));
    return steps;
  }

  // `troupe trace`: record for `ms`, then send the driver what was recorded.
  void start_trace(std::uint32_t ms) {
    const auto length = std::chrono::milliseconds(std::min<std::uint32_t>(ms, 600000));
    if (!trace::start(length)) return;  // one is running: its dump answers this one too
    tracing = true;
    auto timer = std::make_shared<asio::steady_timer>(rt.executor().io(), length);
    timer->async_wait([this, timer](boost::system::error_code) { send_trace(); });
  }
  // Once per trace: at the window's end, or sooner if the worker is stopped.
  void send_trace() {
    if (!tracing.exchange(false)) return;
    auto dump = trace::take(fmt::format("worker of actor {}", actor_id));
    const auto bytes = codec::to_bytes(dump);
    conn->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder env) {
      env.setTraceDump(codec::data_of(bytes));
    }));
  }
  std::atomic<bool> tracing{false};

  void on_frame(net::Frame f) {
    auto env = f.root<proto::WorkerEnvelope>();
    switch (env.which()) {
      case proto::WorkerEnvelope::SPAWN:
        return spawn(env.getSpawn());
      case proto::WorkerEnvelope::REPLY: {
        // The driver answers a call this worker made on an actor handle.
        std::shared_ptr<RemoteActor> r;
        {
          auto& link = worker_link();
          std::lock_guard lock(link.mu);
          auto it = link.routed.find(env.getReply().getTarget());
          if (it != link.routed.end()) r = it->second.lock();
        }
        if (r) r->on_reply(std::move(f));
        return;
      }
      case proto::WorkerEnvelope::CALL: {
        auto c = env.getCall();
        std::uint64_t id = c.getCallId();
        if (!methods || c.getMethod() >= methods->size())
          return reply(id, std::make_exception_ptr(UsageError(fmt::format(
                               "method #{} is not registered for this actor", c.getMethod()))), {});
        auto args = c.getArgs();
        codec::Reader r(codec::bytes_of(args));
        // Traced: the local call the method becomes carries the driver's flow.
        if (trace::on()) trace::inbound_flow() = c.getTraceFlow();
        try {
          (*methods)[c.getMethod()].invoke(actor, r, [this, id](std::exception_ptr e, Bytes result) {
            reply(id, e, result);
          });
        } catch (...) {
          reply(id, std::current_exception(), {});
        }
        trace::inbound_flow() = 0;
        return;
      }
      case proto::WorkerEnvelope::JOIN_GROUP:
      case proto::WorkerEnvelope::STORE_VALUE:
      case proto::WorkerEnvelope::ABORT_GROUP:
        // The collective layer's business (runtime/coll/link.cpp).
        if (auto hook = link_hooks().from_driver) hook(factory ? factory->id(actor) : 0, env);
        return;
      case proto::WorkerEnvelope::TRACE_START:
        return start_trace(env.getTraceStart());
      case proto::WorkerEnvelope::STOP:
        stopping = true;
        send_trace();  // a trace being taken gets what there is (no-op otherwise)
        if (!factory) return conn->finish();
        factory->stop(actor).state()->on_ready([this]() { conn->finish(); });
        return;
      default:
        return;
    }
  }

  int run(int fd) {
    asio::local::stream_protocol::socket ls(asio::make_strand(rt.executor().io()));
    ls.assign(asio::local::stream_protocol(), fd);
    conn = net::Connection::make(net::Connection::Socket(std::move(ls)), "driver");
    return serve();
  }

  // Started by a node daemon: dial the driver, prove the token, name the actor.
  int run_dialled(const std::string& driver, const std::string& token, std::uint64_t actor) {
    std::promise<void> ready;
    auto fut = ready.get_future();
    asio::co_spawn(
        rt.executor().io(),
        [&]() -> asio::awaitable<void> {
          auto limit = std::chrono::milliseconds(10000);
          std::string local;
          conn = co_await cluster::connect_to(rt.executor().io(), cluster::parse_address(driver), limit, &local);
          {
            auto& link = worker_link();
            std::lock_guard lock(link.mu);
            link.local_host = local;
          }
          co_await net::connect_handshake(conn, token, proto::Role::WORKER, limit);
          co_await conn->write_frame(
              net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) { e.setAttach(actor); }));
        },
        [&](std::exception_ptr e) {
          if (e)
            ready.set_exception(e);
          else
            ready.set_value();
        });
    try {
      fut.get();
    } catch (const std::exception& e) {
      fmt::print(stderr, "troupe worker {}: cannot reach its driver at {}: {}\n", ::getpid(), driver, e.what());
      rt.shutdown();
      return 4;
    }
    return serve();
  }

  int serve() {
    {
      auto& link = worker_link();
      std::lock_guard lock(link.mu);
      link.conn = conn;
      link.io = rt.executor().io_shared();
      link.pool = rt.pool_handle();
      link.active = true;
    }
    // Handles this worker receives now decode to routed actors (in_worker()).
    detail::set_routed_factory(&routed_actor);
    conn->start([this](net::Frame f) { on_frame(std::move(f)); },
                [this](const std::string&) {
                  if (auto lost = link_hooks().lost) lost();
                  done.set_value(exit_code.load());
                });
    // The actor's and the groups' counters to the driver (send_stats).
    auto ticker = std::make_shared<Ticker>(rt.executor().io(), this);
    ticker->arm();
    int code = done.ref().get();
    ticker->off = true;  // its next tick ends it (the runtime's shutdown drops it)
    rt.shutdown();
    return code;
  }
};

void Ticker::arm() {
  timer.expires_after(std::chrono::milliseconds(50));
  timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->off || self->worker->stopping) return;
    const bool full = ++self->ticks % 20 == 0;
    self->noted = self->worker->send_stats(full, self->noted);
    self->arm();
  });
}

}  // namespace

void run_worker_if_requested() {
  const char* fd_text = std::getenv("TROUPE_WORKER_FD");
  const char* dial = std::getenv("TROUPE_CONNECT");
  if (!fd_text && !dial) return;
  int code = 1;
  try {
    if (fd_text) {
      int fd = std::atoi(fd_text);
      ::unsetenv("TROUPE_WORKER_FD");
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // a process this worker starts must not keep the driver's socket open
      Worker w;
      code = w.run(fd);
    } else {
      // A node daemon's worker dies with its daemon: a dead node leaves no
      // orphan still serving a driver.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const char* parent = std::getenv("TROUPE_PARENT_PID");
      if (parent && ::getppid() != static_cast<pid_t>(std::atoll(parent))) std::_Exit(1);
      std::string driver = dial;
      std::string token = std::getenv("TROUPE_TOKEN") ? std::getenv("TROUPE_TOKEN") : "";
      const char* actor_text = std::getenv("TROUPE_ACTOR_ID");
      std::uint64_t actor = actor_text ? std::strtoull(actor_text, nullptr, 10) : 0;
      for (const char* v : {"TROUPE_CONNECT", "TROUPE_TOKEN", "TROUPE_ACTOR_ID", "TROUPE_PARENT_PID"}) ::unsetenv(v);
      Worker w;
      code = w.run_dialled(driver, token, actor);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "troupe worker {}: {}\n", ::getpid(), e.what());
  }
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(code);
}

}  // namespace troupe::remote
