#pragma once
// Process actors as the core runtime sees them. The core (this folder and
// runtime/*.hpp) holds the typed side: encoding a call by the method's
// parameter types, the registry TROUPE_ACTOR fills, handles as codec values.
// The process side (runtime/remote/: workers, sockets, restarts, placement
// on the cluster) implements these interfaces, and troupe::init() installs
// it (set_extension_factory). Nothing here includes a network header.
#include <any>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <typeindex>
#include <vector>

#include "runtime/telemetry.hpp"
#include "runtime/codec/codec.hpp"
#include "runtime/monitor.hpp"
#include "runtime/options.hpp"
#include "runtime/placement.hpp"
#include "runtime/ref.hpp"

namespace troupe {
class Runtime;
}

namespace troupe::detail {

/// One call on its way to a process actor; the typed subclass
/// (process_call.hpp) holds the caller's Promise.
class PendingCall {
 public:
  virtual ~PendingCall() = default;
  virtual bool deps_ready() const = 0;
  /// Calls `wake` once a pending Ref argument resolves.
  virtual void on_deps(std::function<void()> wake) = 0;
  /// The arguments as codec bytes (throws if a Ref argument failed).
  virtual Bytes encode() = 0;
  virtual void complete(codec::Reader& result) = 0;
  virtual void fail(std::exception_ptr e) = 0;
  std::uint32_t method = 0;  ///< its index in the class's TROUPE_ACTOR list
  int attempts = 0;
  std::uint64_t trace_flow = 0;  ///< while `troupe trace` records: the flow from its send
  /// The worker said this call raised the ActorFailure that ends its actor:
  /// it is failed, never retried, when the worker's exit is handled.
  bool culprit = false;
};

/// A process actor behind an ActorRef (runtime/remote/remote_actor.hpp).
class ProcessActor {
 public:
  virtual ~ProcessActor() = default;
  virtual void call(std::unique_ptr<PendingCall> c) = 0;
  /// Graceful: calls queued before it run, then the worker exits.
  virtual Ref<void> stop() = 0;
  /// SIGKILL to the worker; calls in flight fail with ActorDied(killed).
  virtual void kill() = 0;
  virtual bool alive() const noexcept = 0;
  virtual std::uint64_t id() const noexcept = 0;
  virtual const std::string& name() const noexcept = 0;
  virtual std::size_t rank() const noexcept = 0;
  /// The ActorDied error its callers get (once dead).
  virtual std::exception_ptr death_error() const = 0;
  virtual void add_monitor(MonitorFn fn) = 0;
  /// The node it runs on (0 before it is placed).
  virtual std::uint64_t node() const = 0;
  /// The worker's pid on its node (0 before it starts or after death).
  virtual int pid() const = 0;
  /// The GPUs its worker was given (real device ids; empty: none).
  virtual std::vector<unsigned> devices() const = 0;
  /// In a worker: the driver-side id a handle passed in stands for (0: none).
  virtual std::uint64_t routed_target() const noexcept = 0;
  virtual std::weak_ptr<ProcessActor> weak_handle() = 0;
  /// The steps its actor noted (troupe::note_step), as its worker last said.
  virtual telemetry::StepProgress progress() const noexcept { return {}; }
};

/// A runtime's process-actor side: its cluster link, its workers.
class RuntimeExtension {
 public:
  virtual ~RuntimeExtension() = default;
  /// Places the actor and starts its worker (Infeasible or Error if it cannot).
  virtual std::shared_ptr<ProcessActor> spawn(std::string class_key, Bytes ctor_args, Options opts,
                                              const char* type_name) = 0;
  virtual PlacementGroup placement_group(std::vector<Resources> bundles, Strategy strategy, std::string name) = 0;
  virtual void remove_placement_group(const PlacementGroup& pg) = 0;
  /// First thing at Runtime::shutdown: workers are killed, their calls fail.
  virtual void shutdown() = 0;
  /// Telemetry for the cluster head (runtime/telemetry.hpp); dropped when
  /// this runtime has no cluster link and no address to join.
  virtual void report_job(const telemetry::JobStatus& job) { (void)job; }
  virtual void report_group(const telemetry::GroupStatus& group) { (void)group; }
};

using ExtensionFactory = std::unique_ptr<RuntimeExtension> (*)(Runtime& rt);
/// troupe::init installs the process side; until then process actors are refused.
void set_extension_factory(ExtensionFactory f) noexcept;
ExtensionFactory extension_factory() noexcept;

// Actor handles passed to process actors (as arguments or results). A handle
// travels as the actor's id in the driver; the driver keeps a table of the
// handles it sent (held weakly). A worker that decodes one gets a routed
// ProcessActor whose calls go to the driver over the worker's connection.

/// How a worker answers a call: result bytes, or an error.
using Reply = std::function<void(std::exception_ptr, Bytes)>;
/// Driver side: remembers how to rebuild the handle (an ActorRef<T> in an
/// any, empty once the actor is gone) under `id`.
void export_handle(std::uint64_t id, std::function<std::any()> make, std::type_index type);
/// The exported handle with that id (an empty any if none, or gone).
std::any find_export(std::uint64_t id, std::type_index type);
/// Calls method `method` of the exported handle `id`, replying through `reply`.
void invoke_export(std::uint64_t id, std::uint32_t method, codec::Reader& args, Reply reply);

using RoutedFactory = std::shared_ptr<ProcessActor> (*)(std::uint64_t target, const char* type_name);
/// Set by a worker process as it starts serving: from then on in_worker().
void set_routed_factory(RoutedFactory f) noexcept;
/// True in a worker process.
bool in_worker() noexcept;
/// In a worker: a handle whose calls go to the driver's actor `target`.
std::shared_ptr<ProcessActor> routed_actor(std::uint64_t target, const char* type_name);

}  // namespace troupe::detail
