// `troupe trace` in a driver: the head asks for a window of N ms; the driver
// records its own process, asks each of its live workers (traceStart), and
// answers the head with every process's trace once the window is over and
// the workers have answered (or a grace period has passed).
#include <unistd.h>

#include <set>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include "runtime/cluster/client.hpp"
#include "runtime/codec/capnp.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/trace.hpp"

namespace troupe::cluster {

namespace asio = boost::asio;

namespace {
// What one driver sends the head at most (a frame holds 64 MiB).
constexpr std::size_t kDriverTraceBytes = 48u << 20;
// How long after the window the driver waits for its workers' traces.
constexpr auto kWorkerGrace = std::chrono::seconds(3);
}  // namespace

struct ClusterClient::TraceRun {
  explicit TraceRun(asio::io_context& io) : timer(io) {}
  std::uint64_t request = 0;
  std::set<std::uint64_t> waiting;  // workers asked that have not answered
  std::vector<Bytes> dumps;
  std::vector<std::string> notes;
  std::size_t bytes = 0;
  bool local_done = false;
  asio::steady_timer timer;

  void add(Bytes b, const std::string& who) {
    if (bytes + b.size() > kDriverTraceBytes) {
      notes.push_back(fmt::format("the trace of {} was left out: this driver's traces passed {} MiB", who,
                                  kDriverTraceBytes >> 20));
      return;
    }
    bytes += b.size();
    dumps.push_back(std::move(b));
  }
};

void ClusterClient::add_tracee(std::uint64_t actor, std::function<void(std::uint32_t ms)> start) {
  std::lock_guard lock(mu_);
  tracees_[actor] = std::move(start);
}

void ClusterClient::on_trace_request(std::uint64_t request, std::uint32_t ms) {
  if (trace_) {
    send(net::envelope([&](proto::Envelope::Builder e) {
      auto r = e.initTraceReply();
      r.setRequestId(request);
      r.setError(fmt::format("driver pid {} is taking a trace already", ::getpid()));
    }));
    return;
  }
  auto run = std::make_shared<TraceRun>(io_);
  run->request = request;
  trace_ = run;
  const auto length = std::chrono::milliseconds(std::clamp<std::uint32_t>(ms, 1, 600000));
  if (!trace::start(length))
    run->notes.push_back(fmt::format("driver pid {} was recording already: its trace covers that window", ::getpid()));
  std::vector<std::pair<std::uint64_t, std::function<void(std::uint32_t)>>> ask;
  {
    std::lock_guard lock(mu_);
    ask.assign(tracees_.begin(), tracees_.end());
  }
  for (auto& [actor, start] : ask) {
    run->waiting.insert(actor);
    start(static_cast<std::uint32_t>(length.count()));
  }
  run->timer.expires_after(length);
  run->timer.async_wait([weak = weak_from_this(), run](boost::system::error_code) {
    auto self = weak.lock();
    if (self && self->trace_ == run) self->trace_local_done();
  });
}

void ClusterClient::trace_local_done() {
  auto run = trace_;
  run->add(codec::to_bytes(trace::take("driver")), "the driver");
  run->local_done = true;
  if (run->waiting.empty()) return trace_finish();
  run->timer.expires_after(kWorkerGrace);
  run->timer.async_wait([weak = weak_from_this(), run](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!ec && self && self->trace_ == run) self->trace_finish();
  });
}

void ClusterClient::trace_dump(std::uint64_t actor, capnp::Data::Reader dump) {
  auto span = codec::bytes_of(dump);
  Bytes bytes(span.begin(), span.end());
  asio::post(io_, [weak = weak_from_this(), actor, bytes = std::move(bytes)]() mutable {
    auto self = weak.lock();
    if (!self || !self->trace_ || !self->trace_->waiting.erase(actor)) return;  // late, or not asked
    auto run = self->trace_;
    run->add(std::move(bytes), fmt::format("actor {}'s worker", actor));
    if (run->local_done && run->waiting.empty()) {
      run->timer.cancel();
      self->trace_finish();
    }
  });
}

bool ClusterClient::trace_cut_short() {
  if (!trace_) return false;
  auto run = trace_;
  if (!run->local_done) {
    run->add(codec::to_bytes(trace::take("driver")), "the driver");
    run->local_done = true;
    run->notes.push_back(fmt::format("driver pid {} exited before the window ended: its trace ends there", ::getpid()));
  }
  run->timer.cancel();
  trace_finish();
  return true;
}

void ClusterClient::trace_finish() {
  auto run = std::move(trace_);
  for (auto actor : run->waiting)
    run->notes.push_back(fmt::format("actor {}'s worker sent no trace (within {} s of the window's end, or before "
                                     "the driver left): it may have died",
                                     actor, kWorkerGrace.count()));
  std::shared_ptr<net::Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (lost_.empty()) conn = conn_;  // also while closing: this reply is the driver's last word
  }
  if (!conn) return;
  conn->send(net::envelope([&](proto::Envelope::Builder e) {
    auto r = e.initTraceReply();
    r.setRequestId(run->request);
    auto dumps = r.initDumps(static_cast<unsigned>(run->dumps.size()));
    for (unsigned i = 0; i < dumps.size(); ++i) dumps.set(i, codec::data_of(run->dumps[i]));
    auto notes = r.initNotes(static_cast<unsigned>(run->notes.size()));
    for (unsigned i = 0; i < notes.size(); ++i) notes.set(i, run->notes[i]);
  }));
}

}  // namespace troupe::cluster
