#include "runtime/cluster/connect.hpp"

#include <optional>

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
  v.shares_host_with = n.getSharesHostWith();
  return v;
}
}  // namespace

namespace {
// One question, one answer: connect, authenticate as a client, send, read.
template <class Fill>
net::Frame ask(const Address& head, const std::string& token, std::chrono::milliseconds limit, Fill fill,
               proto::Envelope::Which want, const char* what) {
  asio::io_context io;
  std::optional<net::Frame> answer;
  std::exception_ptr failure;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto c = co_await connect_to(io, head, limit);
        co_await net::connect_handshake(c, token, proto::Role::CLIENT, limit);
        co_await c->write_frame(net::envelope(fill));
        net::Frame f = co_await net::within(c->read_frame(), limit, what);
        if (f.root<proto::Envelope>().which() != want) throw Error(fmt::format("head sent no {}", what));
        answer.emplace(std::move(f));
        c->close("done");
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run_for(limit * 2);
  if (failure) std::rethrow_exception(failure);
  if (!answer) throw Error(fmt::format("no {} from the head at {} within {} ms", what, head.str(), limit.count()));
  return std::move(*answer);
}

}  // namespace

ClusterView query_status(const Address& head, const std::string& token, std::chrono::milliseconds limit) {
  auto f = ask(head, token, limit, [](proto::Envelope::Builder e) { e.initStatusRequest(); }, proto::Envelope::STATUS,
               "status");
  auto st = f.root<proto::Envelope>().getStatus();
  ClusterView out;
  out.head_address = st.getHeadAddress().cStr();
  out.uptime_ms = st.getUptimeMs();
  for (auto n : st.getNodes()) out.nodes.push_back(view_of(n));
  for (auto c : st.getActorStates()) out.actor_states[c.getState().cStr()] = c.getCount();
  out.placement_groups = st.getPlacementGroups();
  return out;
}

std::vector<ActorView> query_actors(const Address& head, const std::string& token, std::chrono::milliseconds limit) {
  auto f = ask(head, token, limit, [](proto::Envelope::Builder e) { e.setActorsRequest(); },
               proto::Envelope::ACTOR_LIST, "actor list");
  std::vector<ActorView> out;
  for (auto a : f.root<proto::Envelope>().getActorList().getActors()) {
    ActorView v;
    v.id = a.getId();
    v.class_name = a.getClassName().cStr();
    v.name = a.getName().cStr();
    v.state = state_name(a.getState());
    v.node = a.getNodeId();
    v.pid = a.getPid();
    v.restarts = a.getRestarts();
    v.death_cause = a.getDeathCause().cStr();
    v.owner = a.getOwner().cStr();
    v.resources = from_proto(a.getResources());
    v.placement_group = a.getPlacementGroup();
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace troupe::cluster
