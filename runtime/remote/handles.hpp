#pragma once
// Actor handles passed to process actors (as arguments or results).
//
// A handle travels as the actor's id in the driver. The driver keeps a table
// of the handles it has sent out; a worker that decodes one gets an ActorRef
// whose calls go to the driver over the worker's own connection, and the
// driver makes the call on the real actor (an in-process cell or another
// process actor). A handle that comes back to the driver decodes to the
// original ActorRef. Handles to a worker's own local actors cannot leave it.
#include <any>
#include <cstdint>
#include <functional>
#include <memory>
#include <typeindex>

#include <fmt/format.h>

#include "runtime/actor_ref.hpp"
#include "runtime/codec/codec.hpp"
#include "runtime/remote/registry.hpp"

namespace troupe::remote {

/// Driver side: remembers how to rebuild the handle (an ActorRef<T> in an
/// any, empty once the actor is gone) under `id`. Held weakly: the table does
/// not keep actors alive.
void export_handle(std::uint64_t id, std::function<std::any()> make, std::type_index type);
/// The exported handle with that id (an empty any if none, or gone).
std::any find_export(std::uint64_t id, std::type_index type);
/// Calls method `method` of the exported handle `id`, replying through `reply`.
void invoke_export(std::uint64_t id, std::uint32_t method, codec::Reader& args, Reply reply);
/// Worker side: a RemoteActor that sends calls for `target` to the driver.
std::shared_ptr<RemoteActor> routed_actor(std::uint64_t target, const char* type_name);
/// True in a worker process.
bool in_worker() noexcept;
/// The driver-side id a routed handle stands for (0 if `r` is not routed).
std::uint64_t routed_target(const RemoteActor& r) noexcept;

}  // namespace troupe::remote

namespace troupe::codec {

template <class T>
struct Codec<ActorRef<T>> {
  static constexpr std::size_t min_size = 8;
  static void encode(Writer& w, const ActorRef<T>& a) {
    if (!a.valid()) throw UsageError("an empty ActorRef cannot be sent to a process actor");
    if (a.remote()) {
      if (auto t = remote::routed_target(*a.remote())) {
        w.put_scalar<std::uint64_t>(t);
        return;
      }
    }
    if (remote::in_worker())
      throw UsageError(fmt::format("a worker cannot send a handle to its own actor {} (only the driver's actors travel)",
                                   a.id()));
    if (!remote::registry().methods(typeid(T)))
      throw UsageError(fmt::format("{} is not registered with TROUPE_ACTOR: its handles cannot be sent to process actors",
                                   detail::type_name<T>()));
    std::function<std::any()> make;
    if (a.remote()) {
      std::weak_ptr<remote::RemoteActor> weak = a.remote()->weak_from_this();
      make = [weak]() -> std::any {
        if (auto r = weak.lock()) return ActorRef<T>(std::move(r));
        return {};
      };
    } else {
      std::weak_ptr<detail::CellBase> weak = a.cell()->weak_from_this();
      make = [weak]() -> std::any {
        if (auto c = weak.lock()) return ActorRef<T>(std::static_pointer_cast<detail::Cell<T>>(std::move(c)));
        return {};
      };
    }
    remote::export_handle(a.id(), std::move(make), typeid(T));
    w.put_scalar<std::uint64_t>(a.id());
  }
  static ActorRef<T> decode(Reader& r) {
    const auto id = r.get_scalar<std::uint64_t>("actor handle");
    if (auto h = remote::find_export(id, typeid(T)); h.has_value()) return std::any_cast<ActorRef<T>&>(h);
    if (!remote::in_worker()) throw DecodeError(fmt::format("no actor handle #{} was sent out from here", id));
    return ActorRef<T>(remote::routed_actor(id, detail::type_name<T>()));
  }
};

}  // namespace troupe::codec
