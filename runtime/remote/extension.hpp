#pragma once
// A runtime's process-actor side (detail::RuntimeExtension): its link to the
// cluster (joined, or an embedded head and node started on first use) and
// the process actors it spawned. troupe::init installs it (install()).
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/detail/process.hpp"
#include "runtime/runtime.hpp"

namespace troupe::cluster {
class ClusterClient;
}

namespace troupe::remote {

class RemoteActor;

class RemoteRuntime final : public detail::RuntimeExtension {
 public:
  explicit RemoteRuntime(Runtime& rt) : rt_(rt) {}
  ~RemoteRuntime() override;

  std::shared_ptr<detail::ProcessActor> spawn(std::string class_key, Bytes ctor_args, Options opts,
                                              const char* type_name) override;
  PlacementGroup placement_group(std::vector<Resources> bundles, Strategy strategy, std::string name) override;
  void remove_placement_group(const PlacementGroup& pg) override;
  void shutdown() override;
  void report_job(const telemetry::JobStatus& job) override;
  void report_group(const telemetry::GroupStatus& group) override;

  /// The cluster link, made on first use (Error if the head cannot be reached).
  std::shared_ptr<cluster::ClusterClient> cluster();

 private:
  Runtime& rt_;
  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::weak_ptr<RemoteActor>> processes_;
  std::shared_ptr<cluster::ClusterClient> cluster_;
  bool report_failed_ = false;  // joining to report failed once: said so, not tried again
  /// The link reports go over: the existing one, or a join when an address
  /// is configured; nullptr otherwise (no embedded head just to be watched).
  std::shared_ptr<cluster::ClusterClient> report_link();
};

/// Makes troupe::init's process side the one every Runtime uses.
void install();
/// Worker mode: if this process was started as a worker, hosts its actor and
/// exits (never returns); otherwise returns at once (remote/worker.cpp).
void run_worker_if_requested();
/// The process side of `rt` (made if need be); UsageError before init.
RemoteRuntime& remote_of(Runtime& rt);
/// rt's cluster link (joined or embedded), made on first use.
cluster::ClusterClient& cluster_of(Runtime& rt);

}  // namespace troupe::remote
