#pragma once
// NVML's documented C ABI, the parts troupe reads (no header is packaged with
// the toolkit here): the node daemons dlopen the driver's library with it
// (node_load.cpp), and the tests' stand-in library answers with the same
// layout (tests/support/fake_nvml.cpp).

namespace troupe::cluster::nvml_abi {

struct Memory {  // nvmlMemory_t
  unsigned long long total, free, used;
};
struct Utilization {  // nvmlUtilization_t
  unsigned gpu, memory;
};
struct Process {  // nvmlProcessInfo_v2_t
  unsigned pid;
  unsigned long long used;
  unsigned gpu_instance, compute_instance;
};

}  // namespace troupe::cluster::nvml_abi
