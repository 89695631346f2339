#include "runtime/remote/handles.hpp"

#include <cxxabi.h>

#include <map>
#include <mutex>

#include "runtime/detail/registry.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/remote/remote_actor.hpp"
#include "runtime/remote/wire.hpp"
#include "runtime/remote/worker_link.hpp"

namespace troupe::remote {

namespace {
struct Exported {
  std::function<std::any()> make;
  std::type_index type{typeid(void)};
};
std::mutex exports_mu;
std::map<std::uint64_t, Exported>& exports() {
  static auto* m = new std::map<std::uint64_t, Exported>();  // process lifetime
  return *m;
}
}  // namespace

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
      r.setResult(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(result.data()), result.size()));
      return;
    }
    r.setErrorType(info.type);
    r.setErrorMessage(info.message);
  });
}

void export_handle(std::uint64_t id, std::function<std::any()> make, std::type_index type) {
  std::lock_guard lock(exports_mu);
  auto& m = exports();
  // Forget handles whose actors are gone, so the table stays small.
  if (m.size() > 1024)
    for (auto it = m.begin(); it != m.end();) it = it->second.make().has_value() ? std::next(it) : m.erase(it);
  m.insert_or_assign(id, Exported{std::move(make), type});
}

std::any find_export(std::uint64_t id, std::type_index type) {
  std::function<std::any()> make;
  {
    std::lock_guard lock(exports_mu);
    auto it = exports().find(id);
    if (it == exports().end() || it->second.type != type) return {};
    make = it->second.make;
  }
  return make();
}

void invoke_export(std::uint64_t id, std::uint32_t method, codec::Reader& args, Reply reply) {
  std::any handle;
  std::type_index type{typeid(void)};
  {
    std::lock_guard lock(exports_mu);
    auto it = exports().find(id);
    if (it != exports().end()) {
      type = it->second.type;
      handle = it->second.make();
    }
  }
  if (!handle.has_value())
    return reply(std::make_exception_ptr(ActorDied(id, {}, DeathCause::stopped, "the actor behind this handle is gone")),
                 {});
  const auto* methods = registry().methods(type);
  if (!methods || method >= methods->size())
    return reply(std::make_exception_ptr(UsageError(fmt::format("method #{} is not registered for that actor", method))),
                 {});
  try {
    (*methods)[method].invoke(handle, args, reply);
  } catch (...) {
    reply(std::current_exception(), {});  // the arguments did not decode
  }
}

std::shared_ptr<RemoteActor> routed_actor(std::uint64_t target, const char* type_name) {
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

WorkerLink& worker_link() {
  static auto* link = new WorkerLink();  // process lifetime
  return *link;
}

bool in_worker() noexcept { return worker_link().active.load(); }

}  // namespace troupe::remote
