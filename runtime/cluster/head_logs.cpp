// `troupe logs` at the head: a request goes to the node that holds the
// worker's files (or the head's own LogServer), its chunks come back to the
// client; see head.hpp and cluster/logs.hpp.
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include "runtime/cluster/head.hpp"
#include "runtime/codec/capnp.hpp"
#include "runtime/net/handshake.hpp"

namespace troupe::cluster {

void Head::on_logs(const std::shared_ptr<Session>& s, proto::LogsRequest::Reader r) {
  LogsAsk ask{r.getActorId(), r.getNodeId(), r.getErr(), r.getFollow(), r.getTail()};
  auto refuse = [&](const std::string& why) {
    s->conn->send(net::envelope([&](proto::Envelope::Builder e) {
      auto k = e.initLogsChunk();
      k.setEof(true);
      k.setError(why);
    }));
  };
  std::uint64_t node = ask.node;
  if (ask.actor) {
    auto a = actors_.find(ask.actor);
    if (a == actors_.end())
      return refuse(fmt::format("no actor {} in the head's directory (troupe actors lists them)", ask.actor));
    node = a->second.node;
  }
  auto n = nodes_.find(node);
  if (n == nodes_.end()) return refuse(fmt::format("no node {} (troupe nodes lists them)", node));
  if (!n->second.slot.alive)
    return refuse(fmt::format("{} is dead ({}): its logs are on that machine, in its daemon's log folder",
                              n->second.slot.label, n->second.death_cause));
  if (log_relays_.size() >= 256)
    return refuse("the head is relaying 256 log streams already: end one (Ctrl-C on a troupe logs -f) and ask again");
  const std::uint64_t id = next_log_++;
  log_relays_[id] = {s, node};
  if (n->second.is_head) {
    if (!local_logs_) {
      log_relays_.erase(id);
      return refuse(ask.actor ? fmt::format("actor {} runs on its driver's own node (the embedded cluster): its "
                                            "output goes to the driver's stdout and stderr",
                                            ask.actor)
                              : fmt::format("{} captures no worker output", n->second.slot.label));
    }
    std::weak_ptr<Head> weak = weak_from_this();
    local_logs_->serve(id, ask, [weak, id](const std::string& data, bool eof, const std::string& error) {
      if (auto self = weak.lock())
        asio::post(self->strand_, [self, id, data, eof, error]() { self->relay_log(id, data, eof, error); });
    });
    return;
  }
  if (!n->second.conn) return refuse(fmt::format("{} is not connected", n->second.slot.label));
  n->second.conn->send(net::envelope([&](proto::Envelope::Builder e) {
    auto q = e.initLogsRequest();
    q.setRequestId(id);
    q.setActorId(ask.actor);
    q.setNodeId(node);
    q.setErr(ask.err);
    q.setTail(ask.tail);
    q.setFollow(ask.follow);
  }));
}

void Head::relay_log(std::uint64_t id, const std::string& data, bool eof, const std::string& error) {
  auto it = log_relays_.find(id);
  if (it == log_relays_.end()) return;
  auto client = it->second.client.lock();
  if (eof) log_relays_.erase(it);
  if (!client) return;
  client->conn->send(net::envelope([&](proto::Envelope::Builder e) {
    auto k = e.initLogsChunk();
    k.setData(codec::data_of(data));
    k.setEof(eof);
    k.setError(error);
  }));
}

void Head::drop_log_relays(const Session* client, std::uint64_t node, const std::string& why) {
  for (auto it = log_relays_.begin(); it != log_relays_.end();) {
    auto c = it->second.client.lock();
    const bool gone = client ? (!c || c.get() == client) : it->second.node == node;
    if (!gone) {
      ++it;
      continue;
    }
    if (client) {  // the client left: stop the node's reading
      auto n = nodes_.find(it->second.node);
      if (n != nodes_.end() && n->second.is_head && local_logs_) local_logs_->cancel(it->first);
      else if (n != nodes_.end() && n->second.conn)
        n->second.conn->send(net::envelope([&](proto::Envelope::Builder e) { e.setLogsCancel(it->first); }));
    } else if (c) {  // the node died: tell the client
      c->conn->send(net::envelope([&](proto::Envelope::Builder e) {
        auto k = e.initLogsChunk();
        k.setEof(true);
        k.setError(why);
      }));
    }
    it = log_relays_.erase(it);
  }
}

}  // namespace troupe::cluster
