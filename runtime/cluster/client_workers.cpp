// The driver's side of its workers: the executable they re-run, where
// they dial back (a worker proves the token and names its actor), and who
// waits for each one's attach and exit news (client.cpp has the head link).
#include <unistd.h>

#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>

#include "runtime/cluster/client.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/net/within.hpp"

namespace troupe::cluster {

namespace asio = boost::asio;

std::string ClusterClient::self_exe() {
  // Read once: every placement and every local worker start needs it.
  static const std::string exe = []() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw Error(fmt::format("cannot find this executable (/proc/self/exe): {}", std::strerror(errno)));
    return std::string(buf, static_cast<std::size_t>(n));
  }();
  return exe;
}

std::string ClusterClient::driver_address() const { return fmt::format("{}:{}", listen_host_, listen_port_); }

void ClusterClient::accept_loop() {
  std::weak_ptr<ClusterClient> weak = weak_from_this();
  acceptor_->async_accept(asio::make_strand(*worker_io_), [weak](boost::system::error_code ec,
                                                                 asio::ip::tcp::socket sock) {
    auto self = weak.lock();
    if (!self || ec == asio::error::operation_aborted) return;
    if (!ec) {
      boost::system::error_code ignored;
      sock.set_option(asio::ip::tcp::no_delay(true), ignored);
      auto ep = sock.remote_endpoint(ignored);
      auto conn = net::Connection::make(net::Connection::Socket(std::move(sock)),
                                        fmt::format("worker at {}:{}", ep.address().to_string(), ep.port()));
      asio::co_spawn(
          conn->executor(),
          [weak, conn]() -> asio::awaitable<void> {
            auto self = weak.lock();
            if (!self) co_return;
            const std::string token = self->token_;
            self.reset();
            auto role = co_await net::accept_handshake(conn, token, kHandshakeLimit);
            if (role != proto::Role::WORKER) throw Error("a peer that is not a worker dialled the driver");
            auto f = co_await net::within(conn->read_frame(), kHandshakeLimit, "worker attach");
            auto env = f.root<proto::WorkerEnvelope>();
            if (env.which() != proto::WorkerEnvelope::ATTACH) throw Error("worker did not name its actor");
            const auto actor = env.getAttach();
            AttachFn fn;
            if (auto s = weak.lock()) {
              std::lock_guard lock(s->mu_);
              auto it = s->attach_.find(actor);
              if (it != s->attach_.end()) {
                fn = std::move(it->second);
                s->attach_.erase(it);
              } else {
                s->early_workers_[actor].push_back(conn);
                co_return;
              }
            }
            if (fn) fn(conn);
          },
          [conn](std::exception_ptr e) {
            if (!e) return;
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              fmt::print(stderr, "troupe: dropped {}: {}\n", conn->peer(), ex.what());
            }
            conn->close("refused");
          });
    }
    self->accept_loop();
  });
}

void ClusterClient::expect_worker(std::uint64_t actor, AttachFn on_attach) {
  std::shared_ptr<net::Connection> early;
  {
    std::lock_guard lock(mu_);
    auto it = early_workers_.find(actor);
    if (it != early_workers_.end() && !it->second.empty()) {
      early = it->second.front();
      it->second.erase(it->second.begin());
      if (it->second.empty()) early_workers_.erase(it);
    } else {
      attach_[actor] = std::move(on_attach);
      return;
    }
  }
  // Never inline: the caller may hold a lock that on_attach takes (an
  // actor's, while it spawns its worker). The worker dialled back before
  // place() returned; it is handed over where a later one would be, on its
  // connection's executor.
  asio::post(early->executor(), [fn = std::move(on_attach), early]() mutable { fn(std::move(early)); });
}

std::size_t ClusterClient::early_workers() {
  std::lock_guard lock(mu_);
  std::size_t n = 0;
  for (auto& [actor, conns] : early_workers_) n += conns.size();
  return n;
}

void ClusterClient::watch_exits(std::uint64_t actor, ExitFn on_exit) {
  std::vector<ExitNews> early;
  {
    std::lock_guard lock(mu_);
    exits_[actor] = on_exit;
    auto it = early_exits_.find(actor);
    if (it != early_exits_.end()) {
      early = std::move(it->second);
      early_exits_.erase(it);
    }
  }
  for (auto& n : early) on_exit(n.info, n.node_died, n.final);
}

void ClusterClient::forget(std::uint64_t actor) {
  std::vector<std::shared_ptr<net::Connection>> stale;
  {
    std::lock_guard lock(mu_);
    attach_.erase(actor);
    exits_.erase(actor);
    tracees_.erase(actor);
    early_exits_.erase(actor);
    auto it = early_workers_.find(actor);
    if (it != early_workers_.end()) {
      stale = std::move(it->second);
      early_workers_.erase(it);
    }
  }
  for (auto& c : stale) c->close("actor gone");
}

}  // namespace troupe::cluster
