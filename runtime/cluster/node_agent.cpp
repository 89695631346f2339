#include "runtime/cluster/node_agent.hpp"

#include <optional>

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "runtime/cluster/connect.hpp"
#include "runtime/codec/capnp.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::cluster {

using clock = std::chrono::steady_clock;

NodeAgent::NodeAgent(asio::io_context& io, NodeOptions opts, std::function<void(std::uint64_t)> on_joined,
                     std::function<void(const std::string&)> on_lost)
    : io_(io),
      opts_(std::move(opts)),
      strand_(asio::make_strand(io)),
      on_joined_(std::move(on_joined)),
      on_lost_(std::move(on_lost)) {}

void NodeAgent::start() {
  auto self = shared_from_this();
  std::weak_ptr<NodeAgent> weak = self;
  launcher_ = std::make_shared<WorkerLauncher>(opts_.token, [weak](WorkerExitInfo info) {
    if (auto s = weak.lock()) s->report_exit(std::move(info));
  });
  launcher_->capture_logs(opts_.logs);
  logs_ = std::make_unique<LogServer>(io_, opts_.logs, "this node");
  asio::co_spawn(strand_, run(), [self](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      self->lost(ex.what());
    }
  });
}

void NodeAgent::stop() {
  if (launcher_) launcher_->kill_all();
  if (logs_) logs_->cancel_all();
  asio::post(strand_, [self = shared_from_this()]() {
    self->done_ = true;
    if (!self->conn_) return;
    // Told, the head marks this node stopped, not failed.
    self->conn_->send(net::envelope([&](proto::Envelope::Builder e) { e.setLeaving("its daemon was stopped"); }));
    self->conn_->finish();
  });
}

void NodeAgent::report_exit(WorkerExitInfo info) {
  asio::post(strand_, [self = shared_from_this(), info = std::move(info)]() {
    if (!self->conn_ || self->done_) return;
    self->conn_->send(net::envelope([&](proto::Envelope::Builder e) { to_proto(info, e.initWorkerExit()); }));
  });
}

void NodeAgent::on_frame(net::Frame f) {
  auto env = f.root<proto::Envelope>();
  switch (env.which()) {
    case proto::Envelope::HEARTBEAT:
      last_head_ = clock::now();
      return;
    case proto::Envelope::START_WORKER: {
      WorkerSpec spec = spec_from_proto(env.getStartWorker());
      try {
        pid_t pid = launcher_->launch(spec);
        conn_->send(net::envelope([&](proto::Envelope::Builder e) {
          auto s = e.initWorkerStarted();
          s.setActorId(spec.actor_id);
          s.setPid(static_cast<std::uint32_t>(pid));
        }));
      } catch (const std::exception& ex) {
        WorkerExitInfo info;
        info.actor_id = spec.actor_id;
        info.started = false;
        info.detail = fmt::format("node {} could not start the worker: {}", node_id_, ex.what());
        fmt::print(stderr, "troupe-daemon: {}\n", info.detail);
        report_exit(std::move(info));
      }
      return;
    }
    case proto::Envelope::KILL_WORKER:
      launcher_->kill(env.getKillWorker());
      return;
    case proto::Envelope::LOGS_REQUEST: {
      auto r = env.getLogsRequest();
      const std::uint64_t id = r.getRequestId();
      LogsAsk ask{r.getActorId(), r.getNodeId(), r.getErr(), r.getFollow(), r.getTail()};
      std::weak_ptr<net::Connection> conn = conn_;
      logs_->serve(id, ask, [conn, id](const std::string& data, bool eof, const std::string& error) {
        if (auto c = conn.lock())
          c->send(net::envelope([&](proto::Envelope::Builder e) {
            auto k = e.initLogsChunk();
            k.setRequestId(id);
            k.setData(codec::data_of(data));
            k.setEof(eof);
            k.setError(error);
          }));
      });
      return;
    }
    case proto::Envelope::LOGS_CANCEL:
      logs_->cancel(env.getLogsCancel());
      return;
    case proto::Envelope::STOP_CLUSTER:
      // `troupe stop`: workers first (they die with us anyway), then the daemon.
      stopped_ = true;
      lost(fmt::format("stopped by the head: {}", env.getStopCluster().cStr()));
      return;
    default:
      return;
  }
}

void NodeAgent::lost(const std::string& reason) {
  if (done_) return;
  done_ = true;
  if (logs_) logs_->cancel_all();
  if (launcher_) launcher_->kill_all();
  if (conn_) conn_->close(reason);
  on_lost_(reason);
}

asio::awaitable<void> NodeAgent::run() {
  conn_ = co_await connect_to(io_, opts_.head, opts_.connect_timeout);
  co_await net::connect_handshake(conn_, opts_.token, proto::Role::NODE, opts_.connect_timeout);
  co_await conn_->write_frame(net::envelope([&](proto::Envelope::Builder e) {
    auto r = e.initRegisterNode();
    r.setHostname(opts_.hostname);
    r.setPid(static_cast<std::uint32_t>(::getpid()));
    to_proto(opts_.resources.total, r.initResources(static_cast<unsigned>(opts_.resources.total.size())));
    r.setHost(opts_.resources.host);
    auto d = r.initDetected(static_cast<unsigned>(opts_.resources.detected.size()));
    unsigned i = 0;
    for (const auto& k : opts_.resources.detected) d.set(i++, k);
  }));
  net::Frame welcome = co_await conn_->read_frame();
  auto env = welcome.root<proto::Envelope>();
  if (env.which() != proto::Envelope::WELCOME || env.getWelcome().getNodeId() == 0)
    throw Error("head did not accept the node registration");
  node_id_ = env.getWelcome().getNodeId();
  granted_ = from_proto(env.getWelcome().getGranted());
  shares_with_ = env.getWelcome().getSharesHostWith();
  last_head_ = clock::now();
  std::weak_ptr<NodeAgent> weak = weak_from_this();
  conn_->start(
      [weak](net::Frame f) {
        if (auto self = weak.lock())
          asio::post(self->strand_, [self, f = std::move(f)]() mutable { self->on_frame(std::move(f)); });
      },
      [weak](const std::string& reason) {
        if (auto self = weak.lock())
          asio::post(self->strand_, [self, reason]() { self->lost(fmt::format("lost the head: {}", reason)); });
      });
  on_joined_(node_id_);
  co_await heartbeat_loop();
}

asio::awaitable<void> NodeAgent::heartbeat_loop() {
  asio::steady_timer timer(strand_);
  std::uint64_t seq = 0;
  while (!done_) {
    timer.expires_after(opts_.heartbeat);
    co_await timer.async_wait(asio::use_awaitable);
    auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - last_head_);
    if (silent > opts_.head_timeout) {
      lost(fmt::format("lost the head: no heartbeat from it for {} ms (timeout {} ms)", silent.count(),
                       opts_.head_timeout.count()));
      co_return;
    }
    // The head keeps the last load a heartbeat carried.
    std::optional<NodeLoad> load;
    if (sampler_.due()) load = sampler_.sample(launcher_->workers());
    conn_->send(net::envelope([&](proto::Envelope::Builder e) {
      auto h = e.initHeartbeat();
      h.setSeq(++seq);
      if (load) to_proto(*load, h.initLoad());
    }));
  }
}

}  // namespace troupe::cluster
