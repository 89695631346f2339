#pragma once
// The CUDA runtime and NCCL entry points the device backends call, as the
// CUDA plugin hands them over (runtime/detail/cuda_plugin.hpp): the static
// libraries reference no CUDA or NCCL symbol, so programs link without them.
// CUDA builds only (this header needs the toolkit's headers); each entry has
// the library function's own type.
#include <cstddef>

#include <cuda_runtime_api.h>

#define TROUPE_CUDART_API(X)                                                                                  \
  X(cudaGetErrorString) X(cudaGetLastError) X(cudaSetDevice) X(cudaGetDeviceProperties) X(cudaFree) X(cudaMemcpy) X(cudaMemcpyAsync) X(cudaMemset) X(cudaMemsetAsync) X(cudaStreamCreate)             \
  X(cudaStreamCreateWithFlags) X(cudaStreamDestroy) X(cudaStreamSynchronize) X(cudaStreamWaitEvent)             \
  X(cudaEventCreateWithFlags) X(cudaEventRecord) X(cudaEventQuery) X(cudaEventDestroy) X(cudaIpcGetMemHandle)   \
  X(cudaIpcOpenMemHandle) X(cudaIpcCloseMemHandle) X(cudaPointerGetAttributes)

#define TROUPE_NCCL_API(X)                                                                                    \
  X(ncclGetErrorString) X(ncclGetLastError) X(ncclGetUniqueId) X(ncclCommInitRankConfig) X(ncclCommInitAll)    \
  X(ncclCommGetAsyncError) X(ncclCommAbort) X(ncclCommDestroy) X(ncclAllReduce) X(ncclReduceScatter)            \
  X(ncclAllGather) X(ncclBroadcast) X(ncclSend) X(ncclRecv) X(ncclGroupStart) X(ncclGroupEnd)

namespace troupe::coll::gpu {

struct CudaRuntimeApi {
#define TROUPE_API_ENTRY(f) decltype(&::f) f = nullptr;
  TROUPE_CUDART_API(TROUPE_API_ENTRY)
#undef TROUPE_API_ENTRY
  // Overloaded by cuda_runtime.h's templates: its C entry point, by type.
  cudaError_t (*cudaMalloc)(void** p, std::size_t bytes) = nullptr;
  /// The device-local backend's kernel (runtime/coll/cuda/reduce.hpp).
  cudaError_t (*reduce_spread)(void* const* srcs, int n_src, void* const* dsts, int n_dst, std::size_t count,
                               int dtype, int op, std::size_t avg_by, cudaStream_t stream) = nullptr;
  /// The NCCL table (NcclApi, nccl_api.hpp), or null if the plugin has no NCCL.
  const void* nccl = nullptr;
};

/// The plugin's CUDA runtime; Error naming why when there is none (no
/// plugin, no CUDA runtime on this machine).
const CudaRuntimeApi& cu();

}  // namespace troupe::coll::gpu
