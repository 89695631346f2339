#include "runtime/remote/extension.hpp"

#include <fmt/format.h>

#include "runtime/detail/executor.hpp"

#include "runtime/cluster/client.hpp"
#include "runtime/net/auth.hpp"
#include "runtime/remote/remote_actor.hpp"

namespace troupe::remote {

RemoteRuntime::~RemoteRuntime() {
  std::shared_ptr<cluster::ClusterClient> link;
  {
    std::lock_guard lock(mu_);
    link = std::move(cluster_);
  }
  if (link) link->close();
}

std::shared_ptr<cluster::ClusterClient> RemoteRuntime::cluster() {
  std::lock_guard lock(mu_);
  if (cluster_) return cluster_;
  if (closed_) throw UsageError("the runtime is shutting down: no cluster link");
  const std::string address = rt_.cluster_address();
  if (address.empty())
    cluster_ = cluster::ClusterClient::embedded(rt_.executor().io_shared());
  else
    cluster_ = cluster::ClusterClient::join(cluster::parse_address(address), net::resolve_token(rt_.cluster_token(), {}),
                                            rt_.executor().io_shared());
  return cluster_;
}

std::shared_ptr<detail::ProcessActor> RemoteRuntime::spawn(std::string class_key, Bytes ctor_args, Options opts,
                                                           const char* type_name) {
  auto r = std::make_shared<RemoteActor>(rt_.executor().io_shared(), rt_.pool_handle(), std::move(class_key), std::move(ctor_args),
                                         std::move(opts), type_name, cluster());
  {
    std::lock_guard lock(mu_);
    if (closed_) throw UsageError("spawn on a runtime that has been shut down");
    std::erase_if(processes_, [](auto& w) { return w.expired(); });
    processes_.push_back(r);
  }
  r->set_owner(&rt_);
  r->start();
  return r;
}

PlacementGroup RemoteRuntime::placement_group(std::vector<Resources> bundles, Strategy strategy, std::string name) {
  auto g = cluster()->create_group(name, strategy, bundles);
  PlacementGroup pg;
  pg.id = g.id;
  pg.strategy = strategy;
  pg.bundles = std::move(bundles);
  pg.nodes = std::move(g.bundle_nodes);
  return pg;
}

std::shared_ptr<cluster::ClusterClient> RemoteRuntime::report_link() {
  {
    std::lock_guard lock(mu_);
    if (cluster_) return cluster_;
    if (closed_ || report_failed_) return nullptr;
  }
  const std::string address = rt_.cluster_address();
  if (address.empty()) return nullptr;
  try {
    return cluster();
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mu_);
      report_failed_ = true;
    }
    fmt::print(stderr, "troupe: cannot report to the cluster head at {}: {} (the run goes on unwatched)\n", address,
               e.what());
    return nullptr;
  }
}

void RemoteRuntime::report_job(const telemetry::JobStatus& job) {
  if (auto link = report_link()) try {
      link->report_job(job);
    } catch (...) {  // a closed link: the report is lost, the run is not
    }
}

void RemoteRuntime::report_group(const telemetry::GroupStatus& group) {
  if (auto link = report_link()) try {
      link->report_group(group);
    } catch (...) {
    }
}

void RemoteRuntime::remove_placement_group(const PlacementGroup& pg) { cluster()->remove_group(pg.id); }

void RemoteRuntime::shutdown() {
  std::vector<std::shared_ptr<RemoteActor>> procs;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    for (auto& w : processes_)
      if (auto p = w.lock()) procs.push_back(std::move(p));
  }
  for (auto& p : procs) p->shutdown();
  for (auto& p : procs) p->wait_dead(std::chrono::seconds(10));
}

namespace {
std::unique_ptr<detail::RuntimeExtension> make(Runtime& rt) { return std::make_unique<RemoteRuntime>(rt); }
}  // namespace

void install() { detail::set_extension_factory(&make); }

RemoteRuntime& remote_of(Runtime& rt) { return static_cast<RemoteRuntime&>(rt.extension()); }

cluster::ClusterClient& cluster_of(Runtime& rt) { return *remote_of(rt).cluster(); }

}  // namespace troupe::remote
