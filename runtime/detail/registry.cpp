#include "runtime/detail/registry.hpp"

#include <atomic>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

namespace troupe::detail {
namespace {
std::mutex labels_mu;
std::unordered_map<std::uint64_t, std::string>& labels() {
  static auto* m = new std::unordered_map<std::uint64_t, std::string>();  // never destroyed: used at exit
  return *m;
}
}  // namespace

namespace {
std::atomic<std::uint64_t> next_id{1};
}  // namespace

std::uint64_t next_actor_id() noexcept { return next_id.fetch_add(1, std::memory_order_relaxed); }

std::uint64_t take_actor_id(std::uint64_t id) noexcept {
  if (id == 0) return next_actor_id();
  std::uint64_t cur = next_id.load(std::memory_order_relaxed);
  while (cur <= id && !next_id.compare_exchange_weak(cur, id + 1, std::memory_order_relaxed)) {
  }
  return id;
}

void register_label(std::uint64_t id, std::string label) {
  std::lock_guard lock(labels_mu);
  labels()[id] = std::move(label);
}

void unregister_label(std::uint64_t id) {
  std::lock_guard lock(labels_mu);
  labels().erase(id);
}

std::string actor_label(std::uint64_t id) {
  std::lock_guard lock(labels_mu);
  auto it = labels().find(id);
  if (it != labels().end()) return it->second;
  return fmt::format("actor #{}", id);
}

std::string make_label(std::uint64_t id, const std::string& name, const char* type) {
  if (name.empty()) return fmt::format("actor #{} ({})", id, type);
  return fmt::format("actor '{}' (#{}, {})", name, id, type);
}

}  // namespace troupe::detail
