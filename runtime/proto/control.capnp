@0xd1f4a3b2c5e60718;
# The cluster control protocol: every frame on a control connection is one
# Envelope. Bulk data never travels here.
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("troupe::proto");

struct Resource {
  name @0 :Text;
  amount @1 :Float64;
}

enum Role {
  node @0;     # a node daemon joining the head
  client @1;   # the CLI or a driver asking questions
  worker @2;   # a worker process talking to its node
}

# Handshake: proofs are HMAC-SHA256 over both nonces with the cluster token
# as key; the token itself never crosses the wire.
struct Hello {
  version @0 :UInt32;
  role @1 :Role;
  nonce @2 :Data;        # client nonce (16+ bytes)
}
struct Challenge {
  nonce @0 :Data;        # server nonce
  proof @1 :Data;        # proves the server knows the token
}
struct Proof {
  proof @0 :Data;        # proves the client knows the token
}
struct Welcome {
  nodeId @0 :UInt64;     # assigned to a registering node, else 0
  headVersion @1 :UInt32;
  granted @2 :List(Resource);   # a node: what the head counts for it (its share of its host)
  sharesHostWith @3 :UInt64;    # a node: the node its host's own resources count on (0: none)
}

struct RegisterNode {
  hostname @0 :Text;
  address @1 :Text;
  pid @2 :UInt32;
  resources @3 :List(Resource);
  host @4 :Text;                # host_identity(): daemons on one host share its own resources
  detected @5 :List(Text);      # the resources found on the machine (not given with --resources)
}

struct Heartbeat {
  seq @0 :UInt64;
  sentUnixMs @1 :UInt64;
  load @2 :NodeLoad;     # node -> head: what the node's machine and workers use now
}

# A node's machine and its workers as its daemon sees them (/proc, NVML).
struct NodeLoad {
  cpuUtil @0 :Float64;          # the host's CPUs, 0..1 since the last heartbeat
  memUsedBytes @1 :UInt64;      # MemTotal - MemAvailable
  memTotalBytes @2 :UInt64;
  gpus @3 :List(GpuLoad);       # empty: no NVML (no driver) on this node
  workers @4 :List(WorkerLoad);
}
struct GpuLoad {
  index @0 :UInt32;
  util @1 :Float64;             # 0..1
  memUsedBytes @2 :UInt64;
  memTotalBytes @3 :UInt64;
}
struct WorkerLoad {
  actorId @0 :UInt64;
  pid @1 :UInt32;
  rssBytes @2 :UInt64;
  cpuUtil @3 :Float64;          # of one core, since the last heartbeat
  gpuMemBytes @4 :UInt64;       # NVML's figure for this pid, 0 if none
}

struct NodeInfo {
  id @0 :UInt64;
  hostname @1 :Text;
  address @2 :Text;
  pid @3 :UInt32;
  alive @4 :Bool;
  deathCause @5 :Text;
  total @6 :List(Resource);
  used @7 :List(Resource);
  msSinceHeartbeat @8 :UInt64;
  isHead @9 :Bool;
  sharesHostWith @10 :UInt64;   # the node whose share of this host's CPUs, memory and GPUs counts (0: none)
  load @11 :NodeLoad;           # its last sample (CPU, memory, GPUs, workers)
  gpuIds @12 :List(UInt32);     # its GPUs (real device ids) and the share of each that actors hold
  gpuUsed @13 :List(Float64);
}

struct StatusRequest {
  unused @0 :Void;
}

struct StateCount {
  state @0 :Text;
  count @1 :UInt32;
}

struct ClusterStatus {
  nodes @0 :List(NodeInfo);
  headAddress @1 :Text;
  uptimeMs @2 :UInt64;
  actorStates @3 :List(StateCount);
  placementGroups @4 :UInt32;
  events @5 :List(Event);       # recent failures, newest last (bounded)
  refusals @6 :List(Event);     # recent requests refused as infeasible, with the reason (bounded)
  pending @7 :UInt32;           # actors placed whose worker has not started yet
  jobs @8 :List(JobInfo);       # running and recent training jobs
  groups @9 :List(GroupInfo);   # collective groups drivers reported
  eventsDropped @10 :UInt64;    # failures older than the ring holds
}

struct Event {
  msAgo @0 :UInt64;
  what @1 :Text;                # "node 2 (host) died", "actor 7 (Replica) died"
  cause @2 :Text;
}

# ---- Training jobs and collective groups (driver -> head) ------------------
# A driver reports each training job after every chunk of steps; the head
# keeps the latest report per job (bounded), names stragglers, and serves
# them to `troupe status|jobs|top` and /metrics.
struct PhaseSplit {              # seconds per step, the mean over the ranks
  data @0 :Float64;
  forward @1 :Float64;
  backward @2 :Float64;
  collective @3 :Float64;        # waiting for the gradients' all-reduce (or a stage's peers)
  optimizer @4 :Float64;
}
struct RankTiming {
  rank @0 :UInt32;
  label @1 :Text;                # "replica 1", "stage 0 dp 1 tp 0"
  peers @2 :Text;                # ranks with the same peers value do the same work (compared for stragglers)
  actorId @3 :UInt64;
  computeS @4 :Float64;          # per step: everything but waiting for peers
  waitS @5 :Float64;             # per step: waiting for peers
}
struct JobReport {
  jobId @0 :UInt64;              # the driver's number for it
  name @1 :Text;
  strategy @2 :Text;
  state @3 :Text;                # "running", "finished", "failed"
  step @4 :Int64;
  totalSteps @5 :Int64;
  epoch @6 :Int64;
  loss @7 :Float32;
  samplesPerS @8 :Float64;
  elapsedS @9 :Float64;
  etaS @10 :Float64;
  split @11 :PhaseSplit;
  ranks @12 :List(RankTiming);
  detail @13 :Text;              # why it failed
  recoveries @14 :UInt32;
  testAccuracy @15 :Float64;     # the last evaluation's (-1: none yet)
  stepS @16 :Float64;            # the last chunk's seconds per step
}
struct Straggler {
  rank @0 :UInt32;
  label @1 :Text;
  computeS @2 :Float64;
  peersS @3 :Float64;            # the median of its peers
  slowdown @4 :Float64;          # computeS / peersS
  sinceStep @5 :Int64;           # the step of the first report that named it (in a row)
}
struct JobInfo {
  report @0 :JobReport;
  owner @1 :Text;                # the driver's address
  msSinceReport @2 :UInt64;
  stragglers @3 :List(Straggler);
  serial @4 :UInt64;             # the head's number for the driver's session: job "serial.jobId"
}
struct GroupReport {
  name @0 :Text;
  uid @1 :UInt64;
  backend @2 :Text;
  members @3 :List(UInt64);      # actor ids by rank (0: an in-process actor)
  state @4 :Text;                # "ready", "aborted", "replaced"
  detail @5 :Text;
}
struct GroupInfo {
  report @0 :GroupReport;
  owner @1 :Text;
  opsPerS @2 :Float64;           # rank 0's, over the last second
  busBandwidth @3 :Float64;      # bytes/s while in operations, x 2(n-1)/n (nccl-tests' all-reduce bus bandwidth)
  bytesPerS @4 :Float64;
  lastRank @5 :Int32;            # the rank that arrived last most often lately (-1: not known)
  lastShare @6 :Float64;         # ... at that share of the operations
}
struct JobReports {
  jobs @0 :List(JobReport);
  groups @1 :List(GroupReport);
  samples @2 :Data;              # a worker's stats frame as it sent it (codec-encoded telemetry::ProcessSample)
  samplesActor @3 :UInt64;       # ... the actor that worker hosts (its counters are taken under this id)
}

# ---- Actor directory and placement -----------------------------------------
# A driver asks the head where a process actor goes; the head reserves the
# resources on a node and either tells the driver to start the worker itself
# (the chosen node is the driver's own) or asks that node's daemon to start
# it. Workers dial back to their driver; calls never pass through the head.

enum PlacementStrategy {
  pack @0;
  spread @1;
  strictPack @2;
  strictSpread @3;
}

struct PlaceActor {
  requestId @0 :UInt64;
  actorId @1 :UInt64;          # 0: a new actor; else a restart of this one
  className @2 :Text;
  name @3 :Text;
  resources @4 :List(Resource);
  placementGroup @5 :UInt64;   # 0: none
  bundle @6 :Int32;            # -1: any bundle of the group
  exe @7 :Text;                # the driver's executable, re-run as the worker
  driverAddress @8 :Text;      # where the worker dials back
  device @9 :Int32;            # explicit device id, -1: assigned
  maskDevices @10 :Bool;
  maxRestarts @11 :Int32;
  requesterNode @12 :UInt64;   # the driver's own node (embedded head), else 0
  proposedId @13 :UInt64;      # a new actor: the id its driver already calls it by (taken if free)
}

# What kind of refusal a placement reply carries (the driver raises the matching error).
enum ErrorKind {
  error @0;       # troupe::Error
  usage @1;       # troupe::UsageError: the request itself is wrong
  infeasible @2;  # troupe::Infeasible: no node has the resources now
}

struct PlaceReply {
  requestId @0 :UInt64;
  ok @1 :Bool;
  error @2 :Text;
  actorId @3 :UInt64;
  nodeId @4 :UInt64;
  local @5 :Bool;              # start the worker yourself
  devices @6 :List(UInt32);
  errorKind @7 :ErrorKind;
}

struct StartWorker {
  actorId @0 :UInt64;
  exe @1 :Text;
  driverAddress @2 :Text;
  devices @3 :List(UInt32);
  maskDevices @4 :Bool;
}

struct WorkerExit {
  actorId @0 :UInt64;
  pid @1 :UInt32;
  started @2 :Bool;            # false: the worker could not be started at all
  signal @3 :Int32;            # 0: exited with `code`
  code @4 :Int32;
  detail @5 :Text;             # why, in words
  nodeDied @6 :Bool;
  final @7 :Bool;              # the head ended it (placement group removed): no restart
}

enum ActorState {
  pending @0;
  alive @1;
  restarting @2;
  dead @3;
}

# Driver -> head: what became of one of its actors.
struct ActorReport {
  actorId @0 :UInt64;
  state @1 :ActorState;
  pid @2 :UInt32;
  detail @3 :Text;
  restarts @4 :UInt32;
}

struct WorkerStarted {
  actorId @0 :UInt64;
  pid @1 :UInt32;
}

struct ActorInfo {
  id @0 :UInt64;
  className @1 :Text;
  name @2 :Text;
  state @3 :ActorState;
  nodeId @4 :UInt64;
  pid @5 :UInt32;
  restarts @6 :UInt32;
  deathCause @7 :Text;
  resources @8 :List(Resource);
  placementGroup @9 :UInt64;
  owner @10 :Text;
  rssBytes @11 :UInt64;         # its worker's, from its node's last sample
  cpuUtil @12 :Float64;
  gpuMemBytes @13 :UInt64;
  callsTotal @14 :UInt64;       # from its worker's counters (each second)
  callsPerS @15 :Float64;
  queueDepth @16 :UInt32;
  p99S @17 :Float64;            # sampled calls, queueing to end, over the last second (0: none)
}

struct ActorList {
  actors @0 :List(ActorInfo);
}

struct Bundle {
  resources @0 :List(Resource);
}

struct CreatePlacementGroup {
  requestId @0 :UInt64;
  name @1 :Text;
  strategy @2 :PlacementStrategy;
  bundles @3 :List(Bundle);
}

struct PlacementGroupReply {
  requestId @0 :UInt64;
  ok @1 :Bool;
  error @2 :Text;
  groupId @3 :UInt64;
  bundleNodes @4 :List(UInt64);
  errorKind @5 :ErrorKind;
}

# `troupe logs`: a worker's output, captured by its node's daemon into files
# with a size cap, read (and followed) there and relayed by the head.
struct LogsRequest {
  requestId @0 :UInt64;          # the head's, toward a node (0 from a client)
  actorId @1 :UInt64;            # 0: list the node's log files instead
  nodeId @2 :UInt64;             # with actorId 0: which node
  err @3 :Bool;                  # stderr instead of stdout
  tail @4 :UInt32;               # the last N lines first (0: the whole file, up to its cap)
  follow @5 :Bool;               # then keep sending what is written
}
struct LogsChunk {
  requestId @0 :UInt64;
  data @1 :Data;
  eof @2 :Bool;                  # nothing more comes (not following, or an error)
  error @3 :Text;
}

# `troupe trace`: every driver records a window of its own and its workers'
# actor calls, collective operations and training steps (runtime/trace.hpp).
struct TraceRequest {
  requestId @0 :UInt64;          # the head's, toward a driver (0 from a client)
  ms @1 :UInt32;                 # how long to record
}
struct TraceReply {
  requestId @0 :UInt64;
  dumps @1 :List(Data);          # codec-encoded trace::ProcessTrace, one per process
  notes @2 :List(Text);          # processes that did not answer, traces left out
  error @3 :Text;                # the whole request failed (the client's answer)
}

struct ErrorReply {
  message @0 :Text;
}

struct Envelope {
  union {
    hello @0 :Hello;
    challenge @1 :Challenge;
    proof @2 :Proof;
    welcome @3 :Welcome;
    registerNode @4 :RegisterNode;
    heartbeat @5 :Heartbeat;
    statusRequest @6 :StatusRequest;
    status @7 :ClusterStatus;
    error @8 :ErrorReply;
    placeActor @9 :PlaceActor;            # driver -> head
    placeReply @10 :PlaceReply;           # head -> driver
    startWorker @11 :StartWorker;         # head -> node
    workerExit @12 :WorkerExit;           # node -> head, head -> owner
    actorReport @13 :ActorReport;         # driver -> head
    killWorker @14 :UInt64;               # driver -> head -> node (actor id)
    actorsRequest @15 :Void;
    actorList @16 :ActorList;
    createPlacementGroup @17 :CreatePlacementGroup;
    placementGroupReply @18 :PlacementGroupReply;
    removePlacementGroup @19 :UInt64;
    workerStarted @20 :WorkerStarted;     # node -> head
    jobReports @21 :JobReports;           # driver -> head
    stopCluster @22 :Text;                # client -> head (why); head -> node: stop your workers and exit
    stopping @23 :Text;                   # head -> client: what it is stopping
    logsRequest @24 :LogsRequest;         # client -> head -> node
    logsChunk @25 :LogsChunk;             # node -> head -> client
    logsCancel @26 :UInt64;               # head -> node: the client of this request left
    leaving @27 :Text;                    # node -> head: stopping on purpose (why): not a failure
    traceRequest @28 :TraceRequest;       # client -> head -> each driver
    traceReply @29 :TraceReply;           # driver -> head -> client
    traceStarted @30 :UInt32;             # head -> client: the trace began on this many drivers
  }
}

# Process actors: a driver and its worker process talk over one socket, with
# no daemon in between. Arguments and results are codec bytes.
struct SpawnActor {
  classKey @0 :Text;     # registry key of (class, constructor argument types)
  ctorArgs @1 :Data;
  name @2 :Text;
  rank @3 :UInt32;
  meshSize @4 :UInt32;
  reentrant @5 :Bool;
  actorId @6 :UInt64;    # the id the driver and the cluster know it by (self().id() in the worker)
}
struct SpawnReply {
  ok @0 :Bool;
  error @1 :Text;
  pid @2 :UInt32;
}
struct CallRequest {
  callId @0 :UInt64;
  method @1 :UInt32;
  args @2 :Data;
  target @3 :UInt64;       # 0: the worker's actor; else (worker -> driver) an
                           # actor handle the driver passed in, by its id there
  traceFlow @4 :UInt64;    # while `troupe trace` records: the flow from the driver's send (0: none)
}
struct CallReply {
  callId @0 :UInt64;
  ok @1 :Bool;
  result @2 :Data;
  errorType @3 :Text;
  errorMessage @4 :Text;
  actorFailure @5 :Bool;   # unused: a worker whose actor died answers no call (see worker.cpp)
  target @6 :UInt64;       # the answer to a worker's call on handle `target`
}
struct StoreEntry {
  key @0 :Text;
  value @1 :Data;
}
struct AbortGroup {
  name @0 :Text;
  uid @1 :UInt64;
  why @2 :Text;
}
struct WorkerEnvelope {
  union {
    spawn @0 :SpawnActor;
    spawnReply @1 :SpawnReply;
    call @2 :CallRequest;
    reply @3 :CallReply;
    stop @4 :Void;
    attach @5 :UInt64;         # a dialled-back worker names its actor id
    joinGroup @6 :Data;        # codec-encoded coll::GroupSpec for the hosted actor
    abortGroup @7 :AbortGroup;
    storeSet @8 :StoreEntry;   # worker -> driver: the group rendezvous store
    storeGet @9 :Text;         # worker -> driver: answered by storeValue once the key exists
    storeValue @10 :StoreEntry;
    joinRequest @11 :Data;     # worker -> driver: codec-encoded coll::detail::JoinRequest (init_group);
                               # answered by joinGroup, or by abortGroup with uid 0 when it fails
    stats @12 :Data;           # worker -> driver, every second: codec-encoded telemetry::ProcessSample
    traceStart @13 :UInt32;    # driver -> worker: record a trace for this many ms, then send traceDump
    traceDump @14 :Data;       # worker -> driver: codec-encoded trace::ProcessTrace
  }
}
