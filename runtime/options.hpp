#pragma once
// How an actor is spawned: its name and its supervision policy.
#include <cstddef>
#include <cstdint>
#include <string>

#include "runtime/placement.hpp"

namespace troupe {

/// Spawn options, built fluently: Options{}.name("ps").max_restarts(3).
struct Options {
  std::string name_;
  int max_restarts_ = 0;      ///< re-creations after a failure; -1 = unlimited
  int max_call_retries_ = 0;  ///< re-deliveries of a call in flight at a failure; -1 = unlimited
  bool reentrant_ = false;    ///< let other calls run while a coroutine method is suspended
  int observe_ = -1;          ///< count calls, queue, latencies: 1 on, 0 off, -1 as RuntimeOptions::observe
  bool process_ = false;      ///< run in a worker process of its own
  double gpus_ = 0;           ///< GPUs asked for (a process actor, device assigned)
  int device_ = -1;           ///< explicit device id for the worker (-1: none / first free)
  bool mask_devices_ = false; ///< set CUDA_VISIBLE_DEVICES in the worker (breaks NCCL peer discovery)
  Resources resources_;       ///< what placement reserves for it (process actors)
  std::uint64_t group_ = 0;   ///< placement group id (0: none)
  int bundle_ = -1;           ///< bundle of that group (-1: any)
  std::size_t rank_ = 0;      ///< set by spawn_mesh
  std::size_t mesh_size_ = 1; ///< set by spawn_mesh
  std::uint64_t id_ = 0;      ///< internal: the id a worker's actor takes (the one its driver and the cluster use)

  /// A unique name: Runtime::get_actor finds it; a second live actor with the
  /// same name is refused with DuplicateName.
  Options& name(std::string n) { name_ = std::move(n); return *this; }
  /// How many times a failed actor is re-created from its constructor
  /// arguments (0: never, -1: always). Default 0.
  Options& max_restarts(int n) { max_restarts_ = n; return *this; }
  /// What happens to calls queued or running when the actor fails: 0 (the
  /// default) fails them with ActorDied; n > 0 re-delivers each to the
  /// restarted actor up to n times (-1: without limit).
  Options& max_call_retries(int n) { max_call_retries_ = n; return *this; }
  /// By default a coroutine method holds the mailbox until it finishes (calls
  /// run strictly one at a time). Reentrant actors run other calls while one is
  /// suspended at a co_await (still never two at once).
  Options& reentrant(bool on = true) { reentrant_ = on; return *this; }
  /// This actor's calls counted for `troupe top` or not (default: RuntimeOptions::observe).
  Options& observe(bool on) { observe_ = on ? 1 : 0; return *this; }
  /// Runs the actor in a worker process of its own (the driver's executable
  /// re-run in worker mode; its class must be registered with TROUPE_ACTOR).
  /// Calls then travel over a socket, encoded with the codec.
  Options& process(bool on = true) { process_ = on; return *this; }
  /// GPUs for the actor: a fraction of one device (0.25, 0.5) or whole
  /// devices. Any resource request makes it a process actor, placed by the
  /// head on a node that has the resources free.
  Options& gpus(double n) { gpus_ = n; resources_["GPU"] = n; if (n > 0) process_ = true; return *this; }
  /// CPUs reserved for the actor while it lives (fractions allowed).
  Options& cpus(double n) { resources_["CPU"] = n; process_ = true; return *this; }
  /// Memory reserved for the actor, in bytes.
  Options& memory(double bytes) { resources_["memory"] = bytes; process_ = true; return *this; }
  /// A custom resource, as nodes declare them with --resources name=amount.
  Options& resource(const std::string& name, double amount) { resources_[name] = amount; process_ = true; return *this; }
  /// Places the actor in a bundle of a placement group (-1: any bundle with room).
  Options& placement_group(const PlacementGroup& pg, int bundle = -1) {
    group_ = pg.id;
    bundle_ = bundle;
    process_ = true;
    return *this;
  }
  /// The CUDA device the worker should use (TROUPE_DEVICE in its environment).
  Options& device(int id) { device_ = id; return *this; }
  /// Also mask the worker's devices with CUDA_VISIBLE_DEVICES (off by default:
  /// masking hides peers from NCCL).
  Options& mask_devices(bool on = true) { mask_devices_ = on; return *this; }
};

/// What a monitor is told when an actor dies.
struct DownEvent;

}  // namespace troupe
