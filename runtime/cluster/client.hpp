#pragma once
// A driver's link to the cluster: placement requests and actor reports to the
// head, exit news from it, and the listener its dialled-back workers attach to.
//
// The head link runs on a thread of its own, so place() may block any thread
// (an actor's, a pool thread) without starving the replies it waits for.
// Worker connections are accepted onto the driver runtime's io_context: calls
// to process actors never touch this thread.
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "runtime/cluster/address.hpp"
#include "runtime/cluster/launcher.hpp"
#include "runtime/cluster/placement.hpp"
#include "runtime/net/connection.hpp"
#include "runtime/telemetry.hpp"

namespace troupe::cluster {

class Head;

struct PlaceRequest {
  std::uint64_t actor_id = 0;  ///< 0: new; else a restart
  std::uint64_t proposed_id = 0;  ///< new: the driver's id for it, which the head takes if free
  std::string class_name, name;
  ResourceMap resources;
  std::uint64_t group = 0;
  int bundle = -1;
  int device = -1;
  bool mask_devices = false;
  int max_restarts = 0;
};

struct PlaceResult {
  std::uint64_t actor_id = 0, node = 0;
  bool local = false;  ///< start the worker in this process
  std::vector<unsigned> devices;
};

struct GroupResult {
  std::uint64_t id = 0;
  std::vector<std::uint64_t> bundle_nodes;
};

class ClusterClient : public std::enable_shared_from_this<ClusterClient> {
 public:
  using AttachFn = std::function<void(std::shared_ptr<net::Connection>)>;
  /// `final`: the head ended the actor (its placement group was removed).
  using ExitFn = std::function<void(const WorkerExitInfo&, bool node_died, bool final)>;

  /// Joins the cluster whose head is at `head` (throws Error if it cannot).
  static std::shared_ptr<ClusterClient> join(Address head, std::string token,
                                             std::shared_ptr<boost::asio::io_context> worker_io);
  /// Starts a head and a node inside this process (the embedded cluster).
  static std::shared_ptr<ClusterClient> embedded(std::shared_ptr<boost::asio::io_context> worker_io);
  ~ClusterClient();
  void close();

  /// Asks the head where an actor goes. Throws Infeasible / Error.
  PlaceResult place(const PlaceRequest& r);
  GroupResult create_group(const std::string& name, Strategy s, const std::vector<ResourceMap>& bundles);
  void remove_group(std::uint64_t id);
  /// State news for the directory (ActorState as int).
  void report(std::uint64_t actor, int state, std::uint32_t pid, const std::string& detail, std::uint32_t restarts);
  /// A worker this process started itself has exited.
  void report_exit(const WorkerExitInfo& info);
  void kill_worker(std::uint64_t actor);
  /// Telemetry for `troupe jobs|groups|top` (sent, not waited for).
  void report_job(const telemetry::JobStatus& job);
  void report_group(const telemetry::GroupStatus& group);
  /// A worker's stats frame (codec-encoded telemetry::ProcessSample), passed
  /// on as it came, with the id of the actor it hosts.
  void report_samples(std::uint64_t actor, capnp::Data::Reader sample);

  /// `troupe trace`: how to ask a live worker of this driver for a trace
  /// (its dump comes back through trace_dump); forget() drops it.
  void add_tracee(std::uint64_t actor, std::function<void(std::uint32_t ms)> start);
  /// A worker's trace (codec-encoded trace::ProcessTrace), as it sent it.
  void trace_dump(std::uint64_t actor, capnp::Data::Reader dump);

  /// Where this driver's workers dial back, and who waits for them:
  /// `on_attach` runs on the worker connection's executor, never inside
  /// this call, even when the worker dialled back before it was made.
  void expect_worker(std::uint64_t actor, AttachFn on_attach);
  /// Workers that dialled back before their actor asked for them (held until it does).
  std::size_t early_workers();
  void watch_exits(std::uint64_t actor, ExitFn on_exit);
  void forget(std::uint64_t actor);

  const std::string& head_address() const noexcept { return head_address_; }
  const std::string& token() const noexcept { return token_; }
  std::uint64_t local_node() const noexcept { return local_node_; }
  std::string driver_address() const;
  /// The executable workers re-run (this one).
  static std::string self_exe();

 private:
  ClusterClient(std::shared_ptr<boost::asio::io_context> worker_io);
  static constexpr std::chrono::milliseconds kHandshakeLimit{5000};  // the head's, and each worker's
  void connect(Address head);
  void on_frame(net::Frame f);
  void on_lost(const std::string& why);
  // `troupe trace` (client_trace.cpp): record, ask the workers, answer the head.
  struct TraceRun;
  void on_trace_request(std::uint64_t request, std::uint32_t ms);
  void trace_local_done();
  void trace_finish();
  // The driver is leaving mid-window: what it has goes to the head now.
  // Returns whether a reply was queued (the link then drains before closing).
  bool trace_cut_short();
  net::Frame request(std::uint64_t id, kj::Array<capnp::word> frame, const char* what);
  void send(kj::Array<capnp::word> frame);
  void accept_loop();
  void start_thread();

  std::shared_ptr<boost::asio::io_context> worker_io_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::promise<void> ran_out_;  // set when io_.run() returns
  std::shared_ptr<Head> head_;  // the embedded head, if any
  std::shared_ptr<net::Connection> conn_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::string head_address_, token_, listen_host_;
  std::uint16_t listen_port_ = 0;
  std::uint64_t local_node_ = 0;

  std::mutex mu_;
  std::uint64_t next_request_ = 1;
  std::map<std::uint64_t, std::promise<net::Frame>> pending_;
  std::map<std::uint64_t, AttachFn> attach_;
  std::map<std::uint64_t, ExitFn> exits_;
  // News that came before anyone asked for it (a worker can dial back, or
  // fail to start, before place() has returned to its actor).
  std::map<std::uint64_t, std::vector<std::shared_ptr<net::Connection>>> early_workers_;
  struct ExitNews {
    WorkerExitInfo info;
    bool node_died = false, final = false;
  };
  std::map<std::uint64_t, std::vector<ExitNews>> early_exits_;
  std::map<std::uint64_t, std::function<void(std::uint32_t)>> tracees_;
  std::shared_ptr<TraceRun> trace_;  // the trace being taken (io_ thread only)
  std::string lost_;  // why the head link is gone ("" while it is up)
  bool closed_ = false;
};

}  // namespace troupe::cluster
