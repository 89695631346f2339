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
}

struct RegisterNode {
  hostname @0 :Text;
  address @1 :Text;
  pid @2 :UInt32;
  resources @3 :List(Resource);
}

struct Heartbeat {
  seq @0 :UInt64;
  sentUnixMs @1 :UInt64;
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
}

struct StatusRequest {
  unused @0 :Void;
}

struct ClusterStatus {
  nodes @0 :List(NodeInfo);
  headAddress @1 :Text;
  uptimeMs @2 :UInt64;
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
}
struct CallReply {
  callId @0 :UInt64;
  ok @1 :Bool;
  result @2 :Data;
  errorType @3 :Text;
  errorMessage @4 :Text;
  actorFailure @5 :Bool;   # unused: a worker whose actor died answers no call (see worker.cpp)
}
struct WorkerEnvelope {
  union {
    spawn @0 :SpawnActor;
    spawnReply @1 :SpawnReply;
    call @2 :CallRequest;
    reply @3 :CallReply;
    stop @4 :Void;
  }
}
