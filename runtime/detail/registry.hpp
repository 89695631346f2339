#pragma once
// Process-wide table of actor labels, for error messages that name an actor
// from nothing but its id (timeouts). Written at spawn and death only.
#include <cstdint>
#include <string>

namespace troupe::detail {

/// A fresh process-unique actor id (never 0).
std::uint64_t next_actor_id() noexcept;
/// `id` if non-zero (an id chosen elsewhere: the cluster's, for a process
/// actor), after making sure next_actor_id() never hands it out; else a new one.
std::uint64_t take_actor_id(std::uint64_t id) noexcept;
void register_label(std::uint64_t id, std::string label);
void unregister_label(std::uint64_t id);
/// "actor 'name' (#id)" or "actor #id".
std::string actor_label(std::uint64_t id);
std::string make_label(std::uint64_t id, const std::string& name, const char* type);

}  // namespace troupe::detail
