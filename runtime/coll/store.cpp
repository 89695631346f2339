#include "runtime/coll/detail/store.hpp"

#include <condition_variable>
#include <map>
#include <mutex>
#include <vector>

#include <fmt/format.h>

#include "runtime/codec/capnp.hpp"
#include "runtime/coll/types.hpp"
#include "runtime/net/handshake.hpp"
#include "runtime/remote/worker_link.hpp"

namespace troupe::coll {

namespace {
struct Store {
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::string> values;                                      // driver: the store
  std::map<std::string, std::vector<std::function<void(const std::string&)>>> watchers;
  std::map<std::string, std::string> answers;                                     // worker: what came back
  bool lost = false;
};
Store& store() {
  static auto* s = new Store();
  return *s;
}

}  // namespace

namespace detail {

void store_put(const std::string& key, const std::string& value) {
  std::vector<std::function<void(const std::string&)>> fns;
  {
    auto& s = store();
    std::lock_guard lock(s.mu);
    s.values[key] = value;
    auto it = s.watchers.find(key);
    if (it != s.watchers.end()) {
      fns = std::move(it->second);
      s.watchers.erase(it);
    }
    s.cv.notify_all();
  }
  for (auto& f : fns) f(value);
}

void store_watch(const std::string& key, std::function<void(const std::string&)> fn) {
  std::string value;
  {
    auto& s = store();
    std::lock_guard lock(s.mu);
    auto it = s.values.find(key);
    if (it == s.values.end()) {
      s.watchers[key].push_back(std::move(fn));
      return;
    }
    value = it->second;
  }
  fn(value);
}

void store_answer(const std::string& key, const std::string& value) {
  auto& s = store();
  std::lock_guard lock(s.mu);
  s.answers[key] = value;
  s.cv.notify_all();
}

void store_lost() {
  auto& s = store();
  std::lock_guard lock(s.mu);
  s.lost = true;
  s.cv.notify_all();
}

}  // namespace detail

void store_set(const std::string& key, const std::string& value) {
  auto& link = remote::worker_link();
  if (!link.active) return detail::store_put(key, value);
  std::lock_guard lock(link.mu);
  link.conn->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) {
    auto entry = e.initStoreSet();
    entry.setKey(key);
    entry.setValue(codec::data_of(value));
  }));
}

std::string store_get(const std::string& key, std::chrono::milliseconds limit) {
  auto& s = store();
  auto& link = remote::worker_link();
  const bool worker = link.active;
  if (worker) {
    std::lock_guard lock(link.mu);
    link.conn->send(net::envelope_of<proto::WorkerEnvelope>([&](proto::WorkerEnvelope::Builder e) { e.setStoreGet(key); }));
  }
  std::unique_lock lock(s.mu);
  auto& where = worker ? s.answers : s.values;
  if (!s.cv.wait_for(lock, limit, [&]() { return where.count(key) || (worker && s.lost); }))
    throw CollectiveError(fmt::format("rendezvous: no value for '{}' within {} ms (a member did not join?)", key,
                                      limit.count()));
  if (!where.count(key)) throw CollectiveError(fmt::format("rendezvous: lost the driver while waiting for '{}'", key));
  return where.at(key);
}

}  // namespace troupe::coll
