#include "runtime/cluster/head.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::cluster {

using clock = std::chrono::steady_clock;

struct Head::Session {
  std::shared_ptr<net::Connection> conn;
  proto::Role role = proto::Role::CLIENT;
  std::uint64_t node_id = 0;  // set once a node registers
};

Head::Head(asio::io_context& io, HeadOptions opts)
    : io_(io), opts_(std::move(opts)), strand_(asio::make_strand(io)), acceptor_(strand_) {}

std::string Head::address() const { return fmt::format("{}:{}", opts_.bind, port_); }

void Head::start() {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(opts_.bind, ec);
  if (ec) throw UsageError(fmt::format("head: '{}' is not an IP address to bind", opts_.bind));
  asio::ip::tcp::endpoint ep(addr, opts_.port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
  acceptor_.bind(ep, ec);
  if (ec) throw Error(fmt::format("head: cannot listen on {}:{}: {}", opts_.bind, opts_.port, ec.message()));
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  started_ = clock::now();
  auto self = shared_from_this();
  asio::co_spawn(strand_, accept_loop(), [self](std::exception_ptr) {});
  asio::co_spawn(strand_, liveness_loop(), [self](std::exception_ptr) {});
}

void Head::stop() {
  asio::post(strand_, [self = shared_from_this()]() {
    self->stopped_ = true;
    boost::system::error_code ignored;
    self->acceptor_.close(ignored);
    self->liveness_.cancel();
    for (auto& w : self->conns_)
      if (auto c = w.lock()) c->close("head stopping");
    self->conns_.clear();
    for (auto& [id, n] : self->nodes_) n.conn.reset();
  });
}

void Head::add_local_node(ResourceMap total, std::string hostname) {
  asio::post(strand_, [self = shared_from_this(), total = std::move(total), hostname = std::move(hostname)]() {
    NodeRecord n;
    n.id = self->next_node_++;
    n.hostname = hostname;
    n.address = self->address();
    n.pid = static_cast<std::uint32_t>(::getpid());
    n.is_head = true;
    n.total = total;
    n.last_heartbeat = clock::now();
    self->nodes_[n.id] = std::move(n);
  });
}

void Head::drop(const std::string& peer, const std::string& why) {
  ++dropped_;
  fmt::print(stderr, "troupe-head: dropped peer {}: {}\n", peer, why);
}

asio::awaitable<void> Head::accept_loop() {
  while (!stopped_) {
    auto sock = co_await acceptor_.async_accept(asio::make_strand(io_), asio::use_awaitable);
    boost::system::error_code ec;
    auto ep = sock.remote_endpoint(ec);
    std::string peer = ec ? "unknown peer" : fmt::format("{}:{}", ep.address().to_string(), ep.port());
    sock.set_option(asio::ip::tcp::no_delay(true), ec);
    auto conn = net::Connection::make(net::Connection::Socket(std::move(sock)), peer);
    std::erase_if(conns_, [](auto& w) { return w.expired(); });
    conns_.push_back(conn);
    asio::co_spawn(conn->executor(), serve(conn), asio::detached);
  }
}

asio::awaitable<void> Head::serve(std::shared_ptr<net::Connection> c) {
  auto s = std::make_shared<Session>();
  s->conn = c;
  try {
    s->role = co_await net::accept_handshake(c, opts_.token, opts_.handshake_timeout);
  } catch (const boost::system::system_error& e) {
    drop(c->peer(), fmt::format("handshake: {}", e.code() == asio::error::eof ? "peer hung up" : e.code().message()));
    c->close("handshake failed");
    co_return;
  } catch (const std::exception& e) {
    drop(c->peer(), e.what());
    c->close("handshake failed");
    co_return;
  }
  asio::post(strand_, [self = shared_from_this(), s]() { self->sessions_.push_back(s); });
  std::weak_ptr<Head> weak = weak_from_this();
  std::weak_ptr<Session> ws = s;
  c->start(
      [weak, ws](net::Frame f) {
        auto self = weak.lock();
        auto s = ws.lock();
        if (!self || !s) return;
        asio::post(self->strand_, [self, s, f = std::move(f)]() mutable { self->on_frame(s, std::move(f)); });
      },
      [weak, s](const std::string& reason) {
        if (auto self = weak.lock()) asio::post(self->strand_, [self, s, reason]() { self->on_close(s, reason); });
      });
}

void Head::on_frame(const std::shared_ptr<Session>& s, net::Frame f) {
  auto env = f.root<proto::Envelope>();
  switch (env.which()) {
    case proto::Envelope::REGISTER_NODE: {
      if (s->role != proto::Role::NODE || s->node_id != 0) {
        drop(s->conn->peer(), "registerNode from a peer that is not an unregistered node");
        s->conn->close("protocol error");
        return;
      }
      auto r = env.getRegisterNode();
      NodeRecord n;
      n.id = next_node_++;
      n.hostname = r.getHostname().cStr();
      n.address = r.getAddress().size() ? r.getAddress().cStr() : s->conn->peer();
      n.pid = r.getPid();
      n.total = from_proto(r.getResources());
      n.last_heartbeat = clock::now();
      n.conn = s->conn;
      s->node_id = n.id;
      fmt::print(stderr, "troupe-head: node {} joined from {} ({}): {}\n", n.id, n.address, n.hostname,
                 format_resources(n.total));
      nodes_[n.id] = std::move(n);
      s->conn->send(net::envelope([&](proto::Envelope::Builder e) {
        auto w = e.initWelcome();
        w.setNodeId(s->node_id);
        w.setHeadVersion(net::kProtocolVersion);
      }));
      return;
    }
    case proto::Envelope::HEARTBEAT: {
      auto it = nodes_.find(s->node_id);
      if (it != nodes_.end() && it->second.alive) it->second.last_heartbeat = clock::now();
      return;
    }
    case proto::Envelope::STATUS_REQUEST:
      s->conn->send(status_frame());
      return;
    default:
      drop(s->conn->peer(), "unexpected message");
      s->conn->send(net::envelope([](proto::Envelope::Builder e) { e.initError().setMessage("unexpected message"); }));
      s->conn->close("protocol error");
  }
}

void Head::on_close(const std::shared_ptr<Session>& s, const std::string& reason) {
  std::erase(sessions_, s);
  if (s->node_id) mark_dead(s->node_id, fmt::format("connection lost: {}", reason));
}

void Head::mark_dead(std::uint64_t id, const std::string& cause) {
  auto it = nodes_.find(id);
  if (it == nodes_.end() || !it->second.alive) return;
  it->second.alive = false;
  it->second.death_cause = cause;
  fmt::print(stderr, "troupe-head: node {} ({}) is dead: {}\n", id, it->second.address, cause);
  if (it->second.conn) {
    it->second.conn->close(cause);
    it->second.conn.reset();
  }
}

asio::awaitable<void> Head::liveness_loop() {
  std::uint64_t seq = 0;
  while (!stopped_) {
    liveness_.expires_after(opts_.heartbeat);
    co_await liveness_.async_wait(asio::use_awaitable);
    const auto now = clock::now();
    ++seq;
    for (auto& [id, n] : nodes_) {
      if (!n.alive || n.is_head) continue;
      auto silent = std::chrono::duration_cast<Millis>(now - n.last_heartbeat);
      if (silent > opts_.node_timeout) {
        mark_dead(id, fmt::format("missed heartbeats for {} ms (timeout {} ms)", silent.count(),
                                  opts_.node_timeout.count()));
        continue;
      }
      if (n.conn)
        n.conn->send(net::envelope([&](proto::Envelope::Builder e) {
          auto h = e.initHeartbeat();
          h.setSeq(seq);
        }));
    }
  }
}

kj::Array<capnp::word> Head::status_frame() const {
  const auto now = clock::now();
  return net::envelope([&](proto::Envelope::Builder e) {
    auto st = e.initStatus();
    st.setHeadAddress(address());
    st.setUptimeMs(static_cast<std::uint64_t>(std::chrono::duration_cast<Millis>(now - started_).count()));
    auto list = st.initNodes(static_cast<unsigned>(nodes_.size()));
    unsigned i = 0;
    for (const auto& [id, n] : nodes_) {
      auto b = list[i++];
      b.setId(id);
      b.setHostname(n.hostname);
      b.setAddress(n.address);
      b.setPid(n.pid);
      b.setAlive(n.alive);
      b.setIsHead(n.is_head);
      b.setDeathCause(n.death_cause);
      b.setMsSinceHeartbeat(
          n.is_head ? 0 : static_cast<std::uint64_t>(std::chrono::duration_cast<Millis>(now - n.last_heartbeat).count()));
      to_proto(n.total, b.initTotal(static_cast<unsigned>(n.total.size())));
      to_proto(n.used, b.initUsed(static_cast<unsigned>(n.used.size())));
    }
  });
}

}  // namespace troupe::cluster
