#include "runtime/remote/handles.hpp"

#include <cxxabi.h>

#include <map>
#include <mutex>

#include "runtime/codec/capnp.hpp"
#include "runtime/detail/registry.hpp"
#include "runtime/detail/type_name.hpp"
#include "runtime/remote/link_hooks.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/remote/remote_actor.hpp"
#include "runtime/remote/wire.hpp"
#include "runtime/remote/worker_link.hpp"

namespace troupe::remote {

ErrorInfo describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const ActorDied& d) {
    if (d.restart().culprit) return {kCulpritType, d.detail(), true, true};
    return {"troupe::ActorDied", d.detail().empty() ? d.what() : d.detail(), true};
  } catch (const RemoteError& r) {
    return {r.type(), r.message()};
  } catch (const std::exception& ex) {
    return {detail::demangle(typeid(ex).name()), ex.what()};
  } catch (...) {
    auto* t = abi::__cxa_current_exception_type();
    return {t ? detail::demangle(t->name()) : "unknown", "non-standard exception"};
  }
}

kj::Array<capnp::word> reply_frame(std::uint64_t call, std::uint64_t target, std::exception_ptr e,
                                   const Bytes& result) {
  ErrorInfo info;
  if (e) info = describe(e);
  return net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder env) {
    auto r = env.initReply();
    r.setCallId(call);
    r.setTarget(target);
    r.setOk(!e);
    if (!e) {
      r.setResult(codec::data_of(result));
      return;
    }
    r.setErrorType(info.type);
    r.setErrorMessage(info.message);
  });
}

std::shared_ptr<detail::ProcessActor> routed_actor(std::uint64_t target, const char* type_name) {
  auto& link = worker_link();
  std::lock_guard lock(link.mu);
  if (auto it = link.routed.find(target); it != link.routed.end())
    if (auto r = it->second.lock()) return r;
  if (!link.conn) throw UsageError("actor handles can be decoded only inside a worker process");
  Options o;
  auto r = std::make_shared<RemoteActor>(link.io, link.pool, std::string(), Bytes{}, o, type_name, nullptr);
  r->route_to(target, link.conn);
  link.routed[target] = r;
  return r;
}

LinkHooks& link_hooks() {
  static auto* hooks = new LinkHooks();  // process lifetime; installed during static initialisation
  return *hooks;
}

WorkerLink& worker_link() {
  static auto* link = new WorkerLink();  // process lifetime
  return *link;
}

}  // namespace troupe::remote
