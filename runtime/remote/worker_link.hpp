#pragma once
// Inside a worker process: its connection to the driver, which the actor
// handles it received (routed actors) send their calls over.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/io_context.hpp>

#include "runtime/detail/pool.hpp"
#include "runtime/net/connection.hpp"

namespace troupe::remote {

class RemoteActor;

struct WorkerLink {
  std::atomic<bool> active{false};
  std::mutex mu;
  std::shared_ptr<net::Connection> conn;
  std::shared_ptr<boost::asio::io_context> io;
  detail::PoolHandle* pool = nullptr;
  std::string local_host;  ///< this worker's address as its driver sees it (dialled workers)
  std::map<std::uint64_t, std::weak_ptr<RemoteActor>> routed;
};
WorkerLink& worker_link();

}  // namespace troupe::remote
