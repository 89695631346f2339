// The collective layer's frames on process actors' links (installed into the
// remote layer's hooks, runtime/remote/link_hooks.hpp): the rendezvous store
// and init_group requests on the driver's side, membership and aborts on the
// worker's.
#include <fmt/format.h>

#include "runtime/codec/capnp.hpp"
#include "runtime/coll/create.hpp"
#include "runtime/coll/detail/store.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/remote/link_hooks.hpp"
#include "runtime/remote/remote_actor.hpp"
#include "runtime/remote/worker_link.hpp"

namespace troupe::coll::detail {

namespace {

// Driver side: a frame from the worker of `from`.
void from_worker(remote::RemoteActor& from, proto::WorkerEnvelope::Reader env,
                 std::function<void(kj::Array<capnp::word>)> reply) {
  switch (env.which()) {
    case proto::WorkerEnvelope::STORE_SET:
      store_put(env.getStoreSet().getKey().cStr(), codec::text_of(env.getStoreSet().getValue()));
      return;
    case proto::WorkerEnvelope::STORE_GET: {
      const std::string key = env.getStoreGet().cStr();
      store_watch(key, [reply = std::move(reply), key](const std::string& value) {
        reply(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
          auto entry = e.initStoreValue();
          entry.setKey(key);
          entry.setValue(codec::data_of(value));
        }));
      });
      return;
    }
    case proto::WorkerEnvelope::JOIN_REQUEST: {
      // init_group inside the worker's actor: the driver forms the group.
      auto data = env.getJoinRequest();
      JoinRequest q;
      try {
        q = codec::from_bytes<JoinRequest>(codec::bytes_of(data));
      } catch (const std::exception& e) {
        fmt::print(stderr, "troupe: a malformed group join request from actor {}: {}\n", from.id(), e.what());
        return;
      }
      if (!from.owner()) return;
      Member m;
      m.id = from.id();
      m.process = true;
      m.remote = from.weak_handle();
      m.node = from.node();
      m.name = from.name();
      const auto devs = from.devices();
      m.device = devs.empty() ? 0 : static_cast<int>(devs.front());
      m.watch = [weak = from.weak_handle()](MonitorFn fn) {
        if (auto r = weak.lock()) r->add_monitor(std::move(fn));
      };
      join_request(*from.owner(), q, std::move(m));
      return;
    }
    default:
      return;
  }
}

// Worker side: a frame from the driver for the hosted actor (0: none yet).
void from_driver(std::uint64_t actor, proto::WorkerEnvelope::Reader env) {
  switch (env.which()) {
    case proto::WorkerEnvelope::JOIN_GROUP: {
      if (!actor) return;
      auto data = env.getJoinGroup();
      try {
        auto spec = codec::from_bytes<GroupSpec>(codec::bytes_of(data));
        {
          auto& link = remote::worker_link();
          std::lock_guard lock(link.mu);
          if (!link.local_host.empty()) spec.host = link.local_host;  // where peers on other hosts reach us
        }
        declare(actor, spec);
      } catch (const std::exception& e) {
        fmt::print(stderr, "troupe worker: bad group membership: {}\n", e.what());
      }
      return;
    }
    case proto::WorkerEnvelope::STORE_VALUE:
      store_answer(env.getStoreValue().getKey().cStr(), codec::text_of(env.getStoreValue().getValue()));
      return;
    case proto::WorkerEnvelope::ABORT_GROUP: {
      if (!actor) return;
      auto a = env.getAbortGroup();
      abort_member(actor, a.getName().cStr(), a.getUid(), a.getWhy().cStr());
      return;
    }
    default:
      return;
  }
}

}  // namespace

bool install_link_hooks() {
  auto& h = remote::link_hooks();
  h.from_worker = &from_worker;
  h.from_driver = &from_driver;
  h.lost = &store_lost;
  h.group_samples = &group_samples;
  return true;
}

}  // namespace troupe::coll::detail
