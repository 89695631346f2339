@0xb5c3a1f27d9e4c01;
using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("test");
# A schema for the codec tests only.

struct Sample {
  id @0 :UInt64;
  label @1 :Text;
  values @2 :List(Float32);
  child @3 :Sample;
}
