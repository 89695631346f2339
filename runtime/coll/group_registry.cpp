// Collective groups: the per-actor registry (a member finds its group by
// name; init_group callers wait for theirs). group.cpp has the group itself.
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "runtime/coll/group.hpp"
#include "runtime/context.hpp"

namespace troupe::coll {

namespace {
using Key = std::pair<std::uint64_t, std::string>;
std::mutex registry_mu;
std::map<Key, std::shared_ptr<Group>>& registry() {
  static auto* m = new std::map<Key, std::shared_ptr<Group>>();
  return *m;
}
// init_group calls waiting for their group (await_group).
std::map<Key, std::vector<Promise<std::shared_ptr<Group>>>>& joining() {
  static auto* m = new std::map<Key, std::vector<Promise<std::shared_ptr<Group>>>>();
  return *m;
}
}  // namespace

namespace detail {

// Whatever uses groups links this file, and so the link hooks (link.cpp): a
// worker receives its membership before its actor first calls group().
[[maybe_unused]] const bool link_hooks_installed = install_link_hooks();

void declare(std::uint64_t actor_id, const GroupSpec& spec) {
  auto g = std::make_shared<Group>(spec);
  std::shared_ptr<Group> old;
  std::vector<Promise<std::shared_ptr<Group>>> waiting;
  {
    std::lock_guard lock(registry_mu);
    auto& slot = registry()[{actor_id, spec.name}];
    old = std::move(slot);
    slot = g;
    if (auto it = joining().find({actor_id, spec.name}); it != joining().end()) {
      waiting = std::move(it->second);
      joining().erase(it);
    }
  }
  if (old) old->destroy();
  for (auto& p : waiting) p.set_value(g);
}

void abort_member(std::uint64_t actor_id, const std::string& name, std::uint64_t uid, const std::string& why) {
  std::shared_ptr<Group> g;
  std::vector<Promise<std::shared_ptr<Group>>> waiting;
  {
    std::lock_guard lock(registry_mu);
    if (uid == 0) {
      if (auto it = joining().find({actor_id, name}); it != joining().end()) {
        waiting = std::move(it->second);
        joining().erase(it);
      }
    } else if (auto it = registry().find({actor_id, name}); it != registry().end() && it->second->uid() == uid) {
      g = it->second;
    }
  }
  if (g) g->abort(why);
  for (auto& p : waiting) p.set_error(std::make_exception_ptr(CollectiveError(why)));
}

Ref<std::shared_ptr<Group>> await_group(std::uint64_t actor_id, const std::string& name) {
  Promise<std::shared_ptr<Group>> p;
  auto ref = p.ref();
  std::lock_guard lock(registry_mu);
  joining()[{actor_id, name}].push_back(std::move(p));
  return ref;
}

std::vector<telemetry::GroupSample> group_samples() {
  std::vector<std::shared_ptr<Group>> groups;
  {
    std::lock_guard lock(registry_mu);
    for (const auto& [key, g] : registry()) groups.push_back(g);
  }
  std::vector<telemetry::GroupSample> out;
  for (const auto& g : groups) out.push_back(g->sample());
  return out;
}

}  // namespace detail

std::shared_ptr<Group> group(const std::string& name) {
  const auto id = troupe::current_actor_id();
  if (!id) throw UsageError(fmt::format("coll::group('{}') outside an actor", name));
  std::lock_guard lock(registry_mu);
  auto it = registry().find({id, name});
  if (it == registry().end())
    throw UsageError(fmt::format("actor #{} is not a member of a collective group '{}'", id, name));
  return it->second;
}

}  // namespace troupe::coll
