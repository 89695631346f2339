// `troupe trace` at the head: a client's request goes to every driver; each
// answers with its own and its workers' traces (cluster/client_trace.cpp);
// the client gets them all once every driver has answered or the window
// plus a grace period has passed. One trace at a time.
#include <fmt/format.h>

#include "runtime/cluster/head.hpp"
#include "runtime/codec/capnp.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::cluster {

namespace {
// What the client gets at most (a frame holds 64 MiB).
constexpr std::size_t kTraceBytes = 56u << 20;
// How long after the window the head waits for drivers (they wait 3 s for their workers).
constexpr auto kDriverGrace = std::chrono::seconds(6);
constexpr std::uint32_t kMaxTraceMs = 600000;
}  // namespace

void Head::on_trace(const std::shared_ptr<Session>& s, std::uint32_t ms) {
  auto refuse = [&](const std::string& why) {
    s->conn->send(net::envelope([&](proto::Envelope::Builder e) { e.initTraceReply().setError(why); }));
  };
  if (ms == 0 || ms > kMaxTraceMs)
    return refuse(fmt::format("a trace records for 1 ms to {} s, not {} ms", kMaxTraceMs / 1000, ms));
  if (trace_) return refuse("the head is taking a trace for another client: ask again once it is done");
  auto relay = std::make_unique<TraceRelay>();
  relay->id = next_trace_++;
  relay->client = s;
  for (auto& d : sessions_)
    if (d->driver && d->conn) {
      relay->waiting.insert(d->serial);
      d->conn->send(net::envelope([&](proto::Envelope::Builder e) {
        auto q = e.initTraceRequest();
        q.setRequestId(relay->id);
        q.setMs(ms);
      }));
    }
  if (relay->waiting.empty())
    return refuse("no driver is connected, so nothing runs to trace: a trace records what drivers and their "
                  "workers do (start a job, then trace it)");
  s->conn->send(net::envelope(
      [&](proto::Envelope::Builder e) { e.setTraceStarted(static_cast<std::uint32_t>(relay->waiting.size())); }));
  relay->timer = std::make_unique<asio::steady_timer>(strand_, std::chrono::milliseconds(ms) + kDriverGrace);
  relay->timer->async_wait([weak = weak_from_this(), id = relay->id](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!ec && self && self->trace_ && self->trace_->id == id) self->trace_finish();
  });
  trace_ = std::move(relay);
}

void Head::on_trace_reply(const std::shared_ptr<Session>& s, proto::TraceReply::Reader r) {
  if (!trace_ || r.getRequestId() != trace_->id || !trace_->waiting.erase(s->serial)) return;  // late or stray
  auto& t = *trace_;
  const std::string who = fmt::format("the driver at {}", s->conn->peer());
  if (r.hasError() && r.getError().size()) t.notes.push_back(fmt::format("{}: {}", who, r.getError().cStr()));
  for (auto note : r.getNotes()) t.notes.push_back(note.cStr());
  for (auto d : r.getDumps()) {
    if (t.bytes + d.size() > kTraceBytes) {
      t.notes.push_back(fmt::format("a process's trace from {} was left out: the traces passed {} MiB", who,
                                    kTraceBytes >> 20));
      continue;
    }
    t.bytes += d.size();
    t.dumps.push_back(codec::text_of(d));
  }
  if (t.waiting.empty()) trace_finish();
}

void Head::trace_left(const Session& s) {
  if (trace_ && trace_->waiting.erase(s.serial)) {
    trace_->notes.push_back(fmt::format("the driver at {} left before it sent its trace", s.conn->peer()));
    if (trace_->waiting.empty()) trace_finish();
  }
}

void Head::trace_finish() {
  auto t = std::move(trace_);
  if (t->timer) t->timer->cancel();
  if (!t->waiting.empty())
    t->notes.push_back(fmt::format("{} driver(s) sent no trace within {} s of the window's end", t->waiting.size(),
                                   kDriverGrace.count()));
  auto client = t->client.lock();
  if (!client || !client->conn) return;
  client->conn->send(net::envelope([&](proto::Envelope::Builder e) {
    auto r = e.initTraceReply();
    auto dumps = r.initDumps(static_cast<unsigned>(t->dumps.size()));
    for (unsigned i = 0; i < dumps.size(); ++i) dumps.set(i, codec::data_of(std::string_view(t->dumps[i])));
    auto notes = r.initNotes(static_cast<unsigned>(t->notes.size()));
    for (unsigned i = 0; i < notes.size(); ++i) notes.set(i, t->notes[i]);
  }));
}

}  // namespace troupe::cluster
