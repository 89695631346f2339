#pragma once
// The rendezvous store of collective groups: a key-value map kept by the
// driver, which every member reaches (in-process directly, a worker process
// over its connection to the driver). Members publish what peers need (a TCP
// address, an NCCL unique id) and wait for each other's keys.
#include <chrono>
#include <functional>
#include <string>

namespace troupe::coll {

void store_set(const std::string& key, const std::string& value);
/// Waits until `key` is set (CollectiveError after `limit`, or if the driver is gone).
std::string store_get(const std::string& key, std::chrono::milliseconds limit);

namespace detail {
/// Driver side: sets a key, and calls `fn` once with its value (at once if set).
void store_put(const std::string& key, const std::string& value);
void store_watch(const std::string& key, std::function<void(const std::string&)> fn);
/// Worker side: the driver's answer to a storeGet.
void store_answer(const std::string& key, const std::string& value);
/// Worker side: the driver connection is gone; waiters fail.
void store_lost();
}  // namespace detail

}  // namespace troupe::coll
