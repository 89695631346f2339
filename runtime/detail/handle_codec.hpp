#pragma once
// Actor handles as codec values: an ActorRef<T> sent to (or returned by) a
// process actor travels as the actor's id in the driver (see process.hpp).
// Included by actor_ref.hpp, after ActorRef.
#include <any>
#include <cstdint>
#include <functional>
#include <memory>

#include <fmt/format.h>

#include "runtime/actor_ref.hpp"  // which includes this header at its end, ActorRef complete
#include "runtime/codec/codec.hpp"
#include "runtime/detail/actor_registry.hpp"
#include "runtime/detail/process.hpp"

namespace troupe::codec {

template <class T>
struct Codec<ActorRef<T>> {
  static constexpr std::size_t min_size = 8;
  static void encode(Writer& w, const ActorRef<T>& a) {
    if (!a.valid()) throw UsageError("an empty ActorRef cannot be sent to a process actor");
    if (a.remote()) {
      if (auto t = a.remote()->routed_target()) {
        w.put_scalar<std::uint64_t>(t);
        return;
      }
    }
    if (detail::in_worker())
      throw UsageError(fmt::format("a worker cannot send a handle to its own actor {} (only the driver's actors travel)",
                                   a.id()));
    if (!detail::registry().methods(typeid(T)))
      throw UsageError(fmt::format("{} is not registered with TROUPE_ACTOR: its handles cannot be sent to process actors",
                                   detail::type_name<T>()));
    std::function<std::any()> make;
    if (a.remote()) {
      std::weak_ptr<detail::ProcessActor> weak = a.remote()->weak_handle();
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
    detail::export_handle(a.id(), std::move(make), typeid(T));
    w.put_scalar<std::uint64_t>(a.id());
  }
  static ActorRef<T> decode(Reader& r) {
    const auto id = r.get_scalar<std::uint64_t>("actor handle");
    if (auto h = detail::find_export(id, typeid(T)); h.has_value()) return std::any_cast<ActorRef<T>&>(h);
    if (!detail::in_worker()) throw DecodeError(fmt::format("no actor handle #{} was sent out from here", id));
    return ActorRef<T>(detail::routed_actor(id, detail::type_name<T>()));
  }
};

}  // namespace troupe::codec
