#pragma once
// troupe's GPU code lives in a plugin, libtroupe_cuda.so, loaded at first use
// (dlopen), so that programs link without CUDA or NCCL and a CPU-only driver
// runs on a machine that has neither. The plugin links the CUDA runtime and
// NCCL itself, holds every kernel (compute and the collectives' reduction),
// and hands back the tables the layers above call through: the CUDA runtime
// and NCCL entry points the collective backends use (runtime/coll/detail/cuda_api.hpp)
// and the compute operations (actors/compute/gpu_ops.hpp).
//
// Where it is looked for: $TROUPE_CUDA_PLUGIN; then <exe>/../lib/troupe/ and
// <exe>/../lib/ (an installed tree, or the build tree's bin/ and lib/); then
// the install folder this library was built for, the Debian packages' and
// /usr/local's; then the build folder it was built in. A build without CUDA
// has no plugin: every device operation says so.
#include <cstddef>
#include <string>

namespace troupe::detail {

/// Bumped whenever a table changes: a plugin of another version is refused.
inline constexpr int kCudaPluginVersion = 1;

struct CudaPlugin {
  int version = 0;
  /// CUDA devices visible to this process; -1 with `why` filled when the
  /// runtime or driver does not answer.
  int (*device_count)(char* why, std::size_t why_len) = nullptr;
  /// Device i's name (into `name`), memory and compute capability.
  bool (*device_info)(int i, char* name, std::size_t name_len, std::size_t* memory, int* major, int* minor) = nullptr;
  /// The collective backends' table (runtime/coll/detail/cuda_api.hpp), null
  /// without NCCL for its NCCL part.
  const void* runtime_api = nullptr;
  /// The compute operations' table (actors/compute/gpu_ops.hpp).
  const void* compute_api = nullptr;
};

/// The plugin, loaded on the first call; null if it cannot be (see
/// cuda_plugin_error()). Never throws.
const CudaPlugin* cuda_plugin() noexcept;
/// Why cuda_plugin() is null: "this build of troupe is CPU-only",
/// "libtroupe_cuda.so: libcudart.so.13: cannot open shared object file", ...
const std::string& cuda_plugin_error() noexcept;
/// Whether this build has the plugin (a CUDA build).
bool cuda_plugin_built() noexcept;

}  // namespace troupe::detail
