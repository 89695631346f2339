#include "runtime/context.hpp"

#include "runtime/errors.hpp"

namespace troupe {
namespace {
thread_local ActorContext* tls_current = nullptr;
}

ActorContext& self() {
  if (!tls_current) throw UsageError("troupe::self() called outside an actor");
  return *tls_current;
}

ActorContext* current_actor() noexcept { return tls_current; }

std::uint64_t current_actor_id() noexcept { return tls_current ? tls_current->id() : 0; }

namespace detail {
ContextGuard::ContextGuard(ActorContext* ctx) noexcept : saved_(tls_current) { tls_current = ctx; }
ContextGuard::~ContextGuard() { tls_current = saved_; }
}  // namespace detail

}  // namespace troupe
