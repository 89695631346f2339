#pragma once
// The driver's side of a process actor: the worker process, the socket to
// it, the calls in flight, and supervision (exit status, restarts, retries).
//
// The head places it (resources, placement group). On the driver's own node
// (the embedded cluster) the driver starts the worker itself over a
// socketpair and reports its exits; on another node that node's daemon starts
// it, the worker dials back here over TCP, and the daemon reports its exit
// through the head. Either way calls go straight to the worker.
//
// Calls are queued in order; one whose Ref arguments are not resolved yet
// holds back the ones behind it (per-sender FIFO, as for local actors). A
// worker that exits fails the calls in flight with ActorDied naming its exit
// code or signal, or re-sends them to a restarted worker when the policy allows.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include <boost/asio/steady_timer.hpp>

#include "runtime/cluster/client.hpp"
#include "runtime/codec/codec.hpp"
#include "runtime/detail/pool.hpp"
#include "runtime/detail/process.hpp"
#include "runtime/net/connection.hpp"
#include "runtime/options.hpp"
#include "runtime/ref.hpp"

namespace troupe {
class Runtime;
}

namespace troupe::remote {

using detail::PendingCall;

/// Why a process actor whose last ActorRef went away died (as Ray ends an
/// actor whose handles are gone): what the actor directory shows.
inline constexpr const char* kReleasedCause = "released: no ActorRef to it was left in its driver";

class RemoteActor final : public detail::ProcessActor, public std::enable_shared_from_this<RemoteActor> {
 public:
  RemoteActor(std::shared_ptr<boost::asio::io_context> io, detail::PoolHandle* pool, std::string class_key,
              Bytes ctor_args, Options opts, const char* type_name,
              std::shared_ptr<cluster::ClusterClient> cluster);
  ~RemoteActor();

  /// Inside a worker: this handle stands for actor `target` of the driver and
  /// sends its calls there over `driver` (instead of start()).
  void route_to(std::uint64_t target, std::shared_ptr<net::Connection> driver);
  std::uint64_t routed_target() const noexcept override { return routed_target_; }
  /// A frame from the worker (driver side), or a reply to a routed call.
  void on_reply(net::Frame f);

  /// Places the actor and starts its first worker (throws Infeasible or Error
  /// if it cannot be placed or started).
  void start();
  void call(std::unique_ptr<PendingCall> c) override;
  /// Graceful: calls queued before it run, then the worker exits.
  Ref<void> stop() override;
  /// SIGKILL to the worker; calls in flight fail with ActorDied(killed).
  void kill() override;
  /// Sends a control frame to the worker, in order with the calls.
  void control(kj::Array<capnp::word> frame);
  void add_monitor(MonitorFn fn) override;
  /// Runtime shutdown: SIGKILL, death cause runtime_shutdown.
  void shutdown();
  /// Blocks until the worker's exit has been handled (or `limit` passes).
  void wait_dead(std::chrono::milliseconds limit);

  bool alive() const noexcept override { return !dead_.load(); }
  /// The ActorDied error its callers get (once dead), read under the lock.
  std::exception_ptr death_error() const override;
  std::uint64_t id() const noexcept override { return id_; }
  /// The runtime that spawned it (forms groups its worker asks for: init_group).
  void set_owner(Runtime* rt) noexcept { owner_ = rt; }
  Runtime* owner() const noexcept { return owner_; }
  const std::string& name() const noexcept override { return opts_.name_; }
  std::size_t rank() const noexcept override { return opts_.rank_; }
  /// The worker's pid on its node (0 before it starts or after death).
  int pid() const override;
  /// The node it runs on, and its id in the cluster's actor directory.
  std::uint64_t node() const override;
  std::uint64_t cluster_id() const;
  /// The GPUs its worker was given (real device ids; empty: none).
  std::vector<unsigned> devices() const override;
  std::weak_ptr<detail::ProcessActor> weak_handle() override { return weak_from_this(); }
  telemetry::StepProgress progress() const noexcept override {
    std::lock_guard lock(progress_mu_);
    return progress_;
  }

 private:
  void spawn_worker();  // under mu_: place, then start (here) or await (remote)
  void launch_local();  // under mu_
  void attach(std::uint64_t gen, std::shared_ptr<net::Connection> c);
  void send_spawn();    // under mu_
  void pump();          // under mu_: send what is ready, in order
  void on_local_exit(pid_t pid, int status);
  void on_remote_exit(const cluster::WorkerExitInfo& info, bool node_died, bool final);
  void on_remote_close(std::uint64_t gen);
  void on_local_close(std::uint64_t gen);
  void worker_gone(std::string detail, bool clean);  // under mu_: drain the socket, then handle_exit
  bool finish_pending_exit();                          // under mu_: handle an exit that waited; false if none
  void handle_exit(std::string detail, bool clean);  // under mu_
  void die(DeathCause cause, std::string detail);  // under mu_
  std::exception_ptr died_error() const;
  void notify(DownEvent ev);

  std::shared_ptr<boost::asio::io_context> io_;
  detail::PoolHandle* pool_;
  const std::string class_key_;
  const Bytes ctor_args_;
  const Options opts_;
  const char* type_name_;
  std::uint64_t id_;  // set before start() returns: the cluster's id once placed
  Runtime* owner_ = nullptr;

  mutable std::mutex mu_;
  // Its worker's last word on the actor's steps (a stats frame), for
  // live straggler scoring; its own lock: read 20 times a second.
  mutable std::mutex progress_mu_;
  telemetry::StepProgress progress_;
  std::deque<std::unique_ptr<PendingCall>> unsent_;
  std::map<std::uint64_t, std::unique_ptr<PendingCall>> inflight_;
  std::uint64_t next_call_ = 1;
  bool waiting_deps_ = false;
  std::shared_ptr<cluster::ClusterClient> cluster_;
  std::uint64_t routed_target_ = 0;
  std::uint64_t cluster_id_ = 0, node_ = 0;
  std::uint64_t gen_ = 0;      // one per worker started
  bool remote_ = false;        // the current worker runs on another node
  std::vector<unsigned> devices_;
  std::shared_ptr<net::Connection> conn_;
  std::unique_ptr<boost::asio::steady_timer> lost_timer_;
  // The worker's exit is known but its socket may still hold replies it sent
  // first: they are read before the exit is acted on (bounded by a timer).
  bool conn_drained_ = false;
  std::optional<std::pair<std::string, bool>> pending_exit_;
  std::unique_ptr<boost::asio::steady_timer> drain_timer_;
  pid_t pid_ = 0;              // a local worker's pid (signals go here)
  pid_t worker_pid_ = 0;       // the worker's pid on its node, from its spawn reply
  int restarts_ = 0;
  bool stopping_ = false, killing_ = false;
  bool released_ = false;  // killed because its last handle was dropped
  DeathCause kill_cause_ = DeathCause::killed;
  std::string failure_detail_;  // from the worker's last ActorDied reply
  std::vector<Promise<void>> stop_waiters_;
  std::vector<MonitorFn> monitors_;
  std::atomic<bool> dead_{false};
  Promise<void> down_;  // completed when dead_ is set
  DeathCause cause_ = DeathCause::stopped;
  std::string detail_;
  std::vector<std::thread> watchers_;
};

}  // namespace troupe::remote
