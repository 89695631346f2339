#include "runtime/detail/process.hpp"

#include <atomic>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "runtime/detail/actor_registry.hpp"
#include "runtime/errors.hpp"

namespace troupe::detail {

namespace {
std::atomic<ExtensionFactory> extension{nullptr};
std::atomic<RoutedFactory> routed{nullptr};

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

void set_extension_factory(ExtensionFactory f) noexcept { extension.store(f); }
ExtensionFactory extension_factory() noexcept { return extension.load(); }

void set_routed_factory(RoutedFactory f) noexcept { routed.store(f); }
bool in_worker() noexcept { return routed.load() != nullptr; }

std::shared_ptr<ProcessActor> routed_actor(std::uint64_t target, const char* type_name) {
  auto f = routed.load();
  if (!f) throw UsageError("actor handles can be decoded only inside a worker process");
  return f(target, type_name);
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

}  // namespace troupe::detail
