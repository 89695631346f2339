#include "runtime/cluster/client.hpp"
#include "runtime/cluster/telemetry_proto.hpp"

#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fmt/format.h>

#include "runtime/cluster/connect.hpp"
#include "runtime/cluster/head.hpp"
#include "runtime/errors.hpp"
#include "runtime/net/auth.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::cluster {

namespace asio = boost::asio;

namespace {
constexpr auto kRequestLimit = std::chrono::seconds(30);

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

[[noreturn]] void throw_refusal(proto::ErrorKind kind, std::string why) {
  switch (kind) {
    case proto::ErrorKind::INFEASIBLE: throw Infeasible(std::move(why));
    case proto::ErrorKind::USAGE: throw UsageError(std::move(why));
    default: throw Error(std::move(why));
  }
}

template <class F>
auto run_on(asio::io_context& io, F&& f) {
  std::promise<void> done;
  auto fut = done.get_future();
  asio::co_spawn(io, std::forward<F>(f), [&done](std::exception_ptr e) {
    if (e)
      done.set_exception(e);
    else
      done.set_value();
  });
  fut.get();
}
}  // namespace

ClusterClient::ClusterClient(std::shared_ptr<asio::io_context> worker_io) : worker_io_(std::move(worker_io)) {}

ClusterClient::~ClusterClient() { close(); }

std::shared_ptr<ClusterClient> ClusterClient::join(Address head, std::string token,
                                                   std::shared_ptr<asio::io_context> worker_io) {
  std::shared_ptr<ClusterClient> c(new ClusterClient(std::move(worker_io)));
  c->token_ = std::move(token);
  c->start_thread();
  try {
    c->connect(std::move(head));
  } catch (...) {
    c->close();
    throw;
  }
  return c;
}

std::shared_ptr<ClusterClient> ClusterClient::embedded(std::shared_ptr<asio::io_context> worker_io) {
  std::shared_ptr<ClusterClient> c(new ClusterClient(std::move(worker_io)));
  c->token_ = net::make_token();
  HeadOptions ho;
  ho.token = c->token_;
  c->head_ = std::make_shared<Head>(c->io_, ho);
  c->local_node_ = c->head_->add_local_node(local_node_resources(), host_name());
  c->head_->start();
  c->start_thread();
  try {
    c->connect(Address{"127.0.0.1", c->head_->port()});
  } catch (...) {
    c->close();
    throw;
  }
  return c;
}

void ClusterClient::start_thread() {
  work_.emplace(asio::make_work_guard(io_));
  thread_ = std::thread([this]() {
    io_.run();
    ran_out_.set_value();
  });
}

void ClusterClient::connect(Address head) {
  head_address_ = head.str();
  run_on(io_, [this, head]() -> asio::awaitable<void> {
    conn_ = co_await connect_to(io_, head, kHandshakeLimit, &listen_host_);
    co_await net::connect_handshake(conn_, token_, proto::Role::CLIENT, kHandshakeLimit);
  });
  // Workers dial back to the address the head sees us at.
  acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(io_);
  asio::ip::tcp::endpoint ep(asio::ip::make_address(listen_host_), 0);
  acceptor_->open(ep.protocol());
  acceptor_->bind(ep);
  acceptor_->listen();
  listen_port_ = acceptor_->local_endpoint().port();
  std::weak_ptr<ClusterClient> weak = weak_from_this();
  conn_->start(
      [weak](net::Frame f) {
        if (auto self = weak.lock()) self->on_frame(std::move(f));
      },
      [weak](const std::string& why) {
        if (auto self = weak.lock()) self->on_lost(why);
      });
  asio::post(io_, [this]() { accept_loop(); });
}

void ClusterClient::close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
  }
  asio::post(io_, [this]() {
    if (acceptor_) {
      boost::system::error_code ignored;
      acceptor_->close(ignored);
    }
    const bool traced = trace_cut_short();
    if (conn_) {
      if (traced)
        conn_->finish();  // the trace's reply leaves first
      else
        conn_->close("driver leaving");
    }
    if (head_) head_->stop();
  });
  // Let the closes run to the end (connections drop their handlers, the head
  // its sessions), so the thread runs out of work; stop it only if that stalls.
  asio::post(io_, [this]() { work_.reset(); });
  if (thread_.joinable()) {
    if (thread_.get_id() == std::this_thread::get_id()) {
      thread_.detach();
    } else {
      if (ran_out_.get_future().wait_for(std::chrono::seconds(3)) != std::future_status::ready) io_.stop();
      thread_.join();
    }
  }
  std::lock_guard lock(mu_);
  for (auto& [id, p] : pending_) p.set_exception(std::make_exception_ptr(Error("the cluster link was closed")));
  pending_.clear();
}

void ClusterClient::on_lost(const std::string& why) {
  std::map<std::uint64_t, std::promise<net::Frame>> pending;
  {
    std::lock_guard lock(mu_);
    lost_ = why.empty() ? "connection closed" : why;
    pending.swap(pending_);
  }
  for (auto& [id, p] : pending)
    p.set_exception(std::make_exception_ptr(Error(fmt::format("lost the head at {}: {}", head_address_, why))));
}

void ClusterClient::on_frame(net::Frame f) {
  auto env = f.root<proto::Envelope>();
  std::uint64_t request = 0;
  switch (env.which()) {
    case proto::Envelope::PLACE_REPLY:
      request = env.getPlaceReply().getRequestId();
      break;
    case proto::Envelope::PLACEMENT_GROUP_REPLY:
      request = env.getPlacementGroupReply().getRequestId();
      break;
    case proto::Envelope::WORKER_EXIT: {
      auto w = env.getWorkerExit();
      WorkerExitInfo info = exit_from_proto(w);
      ExitFn fn;
      {
        std::lock_guard lock(mu_);
        auto it = exits_.find(info.actor_id);
        if (it != exits_.end())
          fn = it->second;
        else
          early_exits_[info.actor_id].push_back(ExitNews{info, w.getNodeDied(), w.getFinal()});
      }
      if (fn) fn(info, w.getNodeDied(), w.getFinal());
      return;
    }
    case proto::Envelope::ERROR:
      fmt::print(stderr, "troupe: the head says: {}\n", env.getError().getMessage().cStr());
      return;
    case proto::Envelope::TRACE_REQUEST:
      return on_trace_request(env.getTraceRequest().getRequestId(), env.getTraceRequest().getMs());
    default:
      return;
  }
  std::promise<net::Frame> p;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(request);
    if (it == pending_.end()) return;
    p = std::move(it->second);
    pending_.erase(it);
  }
  p.set_value(std::move(f));
}

void ClusterClient::send(kj::Array<capnp::word> frame) {
  std::lock_guard lock(mu_);
  if (conn_ && lost_.empty() && !closed_) conn_->send(std::move(frame));
}

net::Frame ClusterClient::request(std::uint64_t id, kj::Array<capnp::word> frame, const char* what) {
  std::future<net::Frame> fut;
  {
    std::lock_guard lock(mu_);
    if (closed_) throw Error(fmt::format("{}: the cluster link was closed", what));
    if (!lost_.empty()) throw Error(fmt::format("{}: lost the head at {}: {}", what, head_address_, lost_));
    fut = pending_[id].get_future();
    conn_->send(std::move(frame));
  }
  if (fut.wait_for(kRequestLimit) != std::future_status::ready) {
    std::lock_guard lock(mu_);
    pending_.erase(id);
    throw TimeoutError(fmt::format("{}: the head at {} did not answer within {} s", what, head_address_,
                                   kRequestLimit.count()));
  }
  return fut.get();
}

PlaceResult ClusterClient::place(const PlaceRequest& r) {
  std::uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_request_++;
  }
  const std::string exe = self_exe();
  net::Frame f = request(id,
                         net::envelope([&](proto::Envelope::Builder e) {
                           auto p = e.initPlaceActor();
                           p.setRequestId(id);
                           p.setActorId(r.actor_id);
                           p.setProposedId(r.proposed_id);
                           p.setClassName(r.class_name);
                           p.setName(r.name);
                           to_proto(r.resources, p.initResources(static_cast<unsigned>(r.resources.size())));
                           p.setPlacementGroup(r.group);
                           p.setBundle(r.bundle);
                           p.setExe(exe);
                           p.setDriverAddress(driver_address());
                           p.setDevice(r.device);
                           p.setMaskDevices(r.mask_devices);
                           p.setMaxRestarts(r.max_restarts);
                           p.setRequesterNode(local_node_);
                         }),
                         "placing an actor");
  auto rep = f.root<proto::Envelope>().getPlaceReply();
  if (!rep.getOk()) throw_refusal(rep.getErrorKind(), rep.getError().cStr());
  PlaceResult out;
  out.actor_id = rep.getActorId();
  out.node = rep.getNodeId();
  out.local = rep.getLocal();
  for (auto d : rep.getDevices()) out.devices.push_back(d);
  return out;
}

GroupResult ClusterClient::create_group(const std::string& name, Strategy s, const std::vector<ResourceMap>& bundles) {
  std::uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = next_request_++;
  }
  net::Frame f = request(id,
                         net::envelope([&](proto::Envelope::Builder e) {
                           auto p = e.initCreatePlacementGroup();
                           p.setRequestId(id);
                           p.setName(name);
                           switch (s) {
                             case Strategy::pack: p.setStrategy(proto::PlacementStrategy::PACK); break;
                             case Strategy::spread: p.setStrategy(proto::PlacementStrategy::SPREAD); break;
                             case Strategy::strict_pack: p.setStrategy(proto::PlacementStrategy::STRICT_PACK); break;
                             case Strategy::strict_spread: p.setStrategy(proto::PlacementStrategy::STRICT_SPREAD); break;
                           }
                           auto bs = p.initBundles(static_cast<unsigned>(bundles.size()));
                           for (unsigned i = 0; i < bundles.size(); ++i)
                             to_proto(bundles[i], bs[i].initResources(static_cast<unsigned>(bundles[i].size())));
                         }),
                         "creating a placement group");
  auto rep = f.root<proto::Envelope>().getPlacementGroupReply();
  if (!rep.getOk()) throw_refusal(rep.getErrorKind(), rep.getError().cStr());
  GroupResult g;
  g.id = rep.getGroupId();
  for (auto n : rep.getBundleNodes()) g.bundle_nodes.push_back(n);
  return g;
}

void ClusterClient::remove_group(std::uint64_t id) {
  send(net::envelope([&](proto::Envelope::Builder e) { e.setRemovePlacementGroup(id); }));
}

void ClusterClient::report(std::uint64_t actor, int state, std::uint32_t pid, const std::string& detail,
                           std::uint32_t restarts) {
  send(net::envelope([&](proto::Envelope::Builder e) {
    auto r = e.initActorReport();
    r.setActorId(actor);
    r.setState(static_cast<proto::ActorState>(state));
    r.setPid(pid);
    r.setDetail(detail);
    r.setRestarts(restarts);
  }));
}

void ClusterClient::report_job(const telemetry::JobStatus& job) {
  send(net::envelope([&](proto::Envelope::Builder e) { to_proto(job, e.initJobReports().initJobs(1)[0]); }));
}

void ClusterClient::report_group(const telemetry::GroupStatus& group) {
  send(net::envelope([&](proto::Envelope::Builder e) { to_proto(group, e.initJobReports().initGroups(1)[0]); }));
}

void ClusterClient::report_samples(std::uint64_t actor, capnp::Data::Reader sample) {
  send(net::envelope([&](proto::Envelope::Builder e) {
    auto r = e.initJobReports();
    r.setSamples(sample);
    r.setSamplesActor(actor);
  }));
}

void ClusterClient::report_exit(const WorkerExitInfo& info) {
  send(net::envelope([&](proto::Envelope::Builder e) { to_proto(info, e.initWorkerExit()); }));
}

void ClusterClient::kill_worker(std::uint64_t actor) {
  send(net::envelope([&](proto::Envelope::Builder e) { e.setKillWorker(actor); }));
}

}  // namespace troupe::cluster
