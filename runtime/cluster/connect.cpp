#include "runtime/cluster/connect.hpp"
#include "runtime/cluster/telemetry_proto.hpp"
#include "runtime/codec/capnp.hpp"

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
  if (n.hasLoad()) v.load = load_from_proto(n.getLoad());
  for (auto g : n.getGpuIds()) v.gpu_ids.push_back(g);
  for (auto g : n.getGpuUsed()) v.gpu_used.push_back(g);
  return v;
}
}  // namespace

namespace {
// An interim answer before the real one (`troupe trace`: traceStarted),
// and how long the real one may take after it.
struct Interim {
  proto::Envelope::Which which;
  std::function<void(proto::Envelope::Reader)> seen;
  std::chrono::milliseconds then;
};

// One question, one answer: connect, authenticate as a client, send, read.
template <class Fill>
net::Frame ask(const Address& head, const std::string& token, std::chrono::milliseconds limit, Fill fill,
               proto::Envelope::Which want, const char* what, const Interim* interim = nullptr) {
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
        if (interim && f.root<proto::Envelope>().which() == interim->which) {
          interim->seen(f.root<proto::Envelope>());
          f = co_await net::within(c->read_frame(), interim->then, what);
        }
        if (f.root<proto::Envelope>().which() != want) throw Error(fmt::format("head sent no {}", what));
        answer.emplace(std::move(f));
        c->close("done");
      },
      [&](std::exception_ptr e) { failure = e; });
  const auto then = interim ? interim->then : std::chrono::milliseconds(0);
  io.run_for(limit * 2 + then);
  if (failure) std::rethrow_exception(failure);
  if (!answer)
    throw Error(fmt::format("no {} from the head at {} within {} ms", what, head.str(), (limit * 2 + then).count()));
  return std::move(*answer);
}

}  // namespace

ClusterView query_status(const Address& head, const std::string& token, std::chrono::milliseconds limit,
                         std::size_t* frame_bytes) {
  auto f = ask(head, token, limit, [](proto::Envelope::Builder e) { e.initStatusRequest(); }, proto::Envelope::STATUS,
               "status");
  if (frame_bytes) *frame_bytes = f.bytes();
  auto st = f.root<proto::Envelope>().getStatus();
  ClusterView out;
  out.head_address = st.getHeadAddress().cStr();
  out.uptime_ms = st.getUptimeMs();
  for (auto n : st.getNodes()) out.nodes.push_back(view_of(n));
  for (auto c : st.getActorStates()) out.actor_states[c.getState().cStr()] = c.getCount();
  out.placement_groups = st.getPlacementGroups();
  out.pending = st.getPending();
  for (auto e : st.getEvents()) out.events.push_back({e.getMsAgo(), e.getWhat().cStr(), e.getCause().cStr()});
  for (auto e : st.getRefusals()) out.refusals.push_back({e.getMsAgo(), e.getWhat().cStr(), e.getCause().cStr()});
  out.events_dropped = st.getEventsDropped();
  for (auto j : st.getJobs()) {
    JobView v;
    v.status = job_from_proto(j.getReport());
    v.id = fmt::format("{}.{}", j.getSerial(), v.status.id);
    v.owner = j.getOwner().cStr();
    v.ms_since_report = j.getMsSinceReport();
    for (auto s : j.getStragglers()) v.stragglers.push_back(straggler_from_proto(s));
    out.jobs.push_back(std::move(v));
  }
  for (auto g : st.getGroups())
    out.groups.push_back({group_from_proto(g.getReport()), g.getOwner().cStr(), g.getOpsPerS(), g.getBusBandwidth(),
                          g.getBytesPerS(), g.getLastRank(), g.getLastShare()});
  return out;
}

std::vector<ActorView> query_actors(const Address& head, const std::string& token, std::chrono::milliseconds limit,
                                    std::size_t* frame_bytes) {
  auto f = ask(head, token, limit, [](proto::Envelope::Builder e) { e.setActorsRequest(); },
               proto::Envelope::ACTOR_LIST, "actor list");
  if (frame_bytes) *frame_bytes = f.bytes();
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
    v.rss = a.getRssBytes();
    v.cpu = a.getCpuUtil();
    v.gpu_mem = a.getGpuMemBytes();
    v.calls = a.getCallsTotal();
    v.calls_per_s = a.getCallsPerS();
    v.p99_s = a.getP99S();
    v.queue = a.getQueueDepth();
    out.push_back(std::move(v));
  }
  return out;
}

void stream_logs(const Address& head, const std::string& token, std::uint64_t actor, std::uint64_t node, bool err,
                 std::uint32_t tail, bool follow, const std::function<void(const std::string&)>& out,
                 std::chrono::milliseconds limit) {
  asio::io_context io;
  std::exception_ptr failure;
  std::string refused;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto c = co_await connect_to(io, head, limit);
        co_await net::connect_handshake(c, token, proto::Role::CLIENT, limit);
        co_await c->write_frame(net::envelope([&](proto::Envelope::Builder e) {
          auto q = e.initLogsRequest();
          q.setActorId(actor);
          q.setNodeId(node);
          q.setErr(err);
          q.setTail(tail);
          q.setFollow(follow);
        }));
        for (;;) {
          // Following waits for as long as the output is quiet; otherwise the
          // tail comes at once.
          // (Not a conditional expression: GCC 12 miscompiles co_await inside one.)
          std::optional<net::Frame> got;
          if (follow) got.emplace(co_await c->read_frame());
          else got.emplace(co_await net::within(c->read_frame(), limit * 4, "logs"));
          net::Frame f = std::move(*got);
          auto env = f.root<proto::Envelope>();
          if (env.which() == proto::Envelope::ERROR) throw Error(env.getError().getMessage().cStr());
          if (env.which() != proto::Envelope::LOGS_CHUNK) continue;
          auto k = env.getLogsChunk();
          const auto d = k.getData();
          if (d.size()) out(codec::text_of(d));
          if (k.getEof()) {
            refused = k.getError().cStr();
            break;
          }
        }
        c->close("done");
      },
      [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
  if (!refused.empty()) throw Error(refused);
}

TraceResult request_trace(const Address& head, const std::string& token, std::chrono::milliseconds window,
                          const std::function<void(std::uint32_t drivers)>& started, std::chrono::milliseconds limit) {
  // traceStarted once the head has asked the drivers (or the refusal), then
  // the traces within the window and the head's 6 s grace for the drivers.
  const Interim started_frame{proto::Envelope::TRACE_STARTED,
                              [&](proto::Envelope::Reader e) {
                                if (started) started(e.getTraceStarted());
                              },
                              window + std::chrono::seconds(15)};
  auto f = ask(
      head, token, limit,
      [&](proto::Envelope::Builder e) { e.initTraceRequest().setMs(static_cast<std::uint32_t>(window.count())); },
      proto::Envelope::TRACE_REPLY, "trace", &started_frame);
  auto r = f.root<proto::Envelope>().getTraceReply();
  if (r.hasError() && r.getError().size()) throw Error(r.getError().cStr());
  TraceResult out;
  for (auto note : r.getNotes()) out.notes.push_back(note.cStr());
  for (auto d : r.getDumps()) {
    try {
      out.processes.push_back(codec::from_bytes<trace::ProcessTrace>(codec::bytes_of(d)));
    } catch (const std::exception& e) {
      out.notes.push_back(fmt::format("a process's trace could not be read ({}) and was left out", e.what()));
    }
  }
  return out;
}

std::string request_stop(const Address& head, const std::string& token, const std::string& why,
                         std::chrono::milliseconds limit) {
  auto f = ask(head, token, limit, [&](proto::Envelope::Builder e) { e.setStopCluster(why); },
               proto::Envelope::STOPPING, "stop");
  return f.root<proto::Envelope>().getStopping().cStr();
}

}  // namespace troupe::cluster
