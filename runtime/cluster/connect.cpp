#include "runtime/cluster/connect.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "runtime/errors.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/net/within.hpp"

namespace troupe::cluster {

namespace asio = boost::asio;

asio::awaitable<std::shared_ptr<net::Connection>> connect_to(asio::io_context& io, Address a,
                                                              std::chrono::milliseconds limit, std::string* local_host) {
  auto strand = asio::make_strand(io);
  asio::ip::tcp::resolver resolver(strand);
  asio::ip::tcp::socket sock(strand);
  auto dial = [&]() -> asio::awaitable<bool> {
    auto endpoints = co_await resolver.async_resolve(a.host, std::to_string(a.port), asio::use_awaitable);
    co_await asio::async_connect(sock, endpoints, asio::use_awaitable);
    co_return true;
  };
  try {
    co_await net::within(dial(), limit, "connect");
  } catch (const TimeoutError& e) {
    throw Error(fmt::format("cannot reach the head at {}: {}", a.str(), e.what()));
  } catch (const boost::system::system_error& e) {
    throw Error(fmt::format("cannot reach the head at {}: {}", a.str(), e.code().message()));
  }
  sock.set_option(asio::ip::tcp::no_delay(true));
  if (local_host) *local_host = sock.local_endpoint().address().to_string();
  co_return net::Connection::make(net::Connection::Socket(std::move(sock)), a.str());
}

namespace {
NodeView view_of(proto::NodeInfo::Reader n) {
  NodeView v;
  v.id = n.getId();
  v.hostname = n.getHostname().cStr();
  v.address = n.getAddress().cStr();
  v.pid = n.getPid();
  v.alive = n.getAlive();
  v.is_head = n.getIsHead();
  v.death_cause = n.getDeathCause().cStr();
  v.total = from_proto(n.getTotal());
  v.used = from_proto(n.getUsed());
  v.ms_since_heartbeat = n.getMsSinceHeartbeat();
  return v;
}
}  // namespace

ClusterView query_status(const Address& head, const std::string& token, std::chrono::milliseconds limit) {
  asio::io_context io;
  ClusterView out;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto c = co_await connect_to(io, head, limit);
        co_await net::connect_handshake(c, token, proto::Role::CLIENT, limit);
        co_await c->write_frame(net::envelope([](proto::Envelope::Builder e) { e.initStatusRequest(); }));
        net::Frame f = co_await c->read_frame();
        auto env = f.root<proto::Envelope>();
        if (env.which() != proto::Envelope::STATUS) throw Error("head sent no status");
        auto st = env.getStatus();
        out.head_address = st.getHeadAddress().cStr();
        out.uptime_ms = st.getUptimeMs();
        for (auto n : st.getNodes()) out.nodes.push_back(view_of(n));
        c->close("done");
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run_for(limit * 2);
  if (failure) std::rethrow_exception(failure);
  if (!io.stopped() && out.head_address.empty())
    throw Error(fmt::format("no status from the head at {} within {} ms", head.str(), limit.count()));
  return out;
}

}  // namespace troupe::cluster
