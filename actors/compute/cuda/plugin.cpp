// The CUDA plugin's entry point (runtime/detail/cuda_plugin.hpp): fills the
// tables that the static libraries call through. Everything else in the
// plugin is hidden (-fvisibility=hidden): it links the CUDA runtime and NCCL
// so that nothing else has to.
#include <cstdio>
#include <cstring>

#include <cuda_runtime_api.h>

#include "actors/compute/cuda/plugin.hpp"
#include "actors/compute/gpu_ops.hpp"
#include "runtime/coll/cuda/reduce.hpp"
#include "runtime/coll/detail/cuda_api.hpp"
#include "runtime/detail/cuda_plugin.hpp"
#ifdef TROUPE_HAVE_NCCL
#include "runtime/coll/detail/nccl_api.hpp"
#endif

namespace troupe::compute {
namespace {

int device_count(char* why, std::size_t len) {
  int n = 0;
  if (cudaError_t e = cudaGetDeviceCount(&n); e != cudaSuccess) {
    std::snprintf(why, len, "%s", cudaGetErrorString(e));
    cudaGetLastError();
    return -1;
  }
  return n;
}

bool device_info(int i, char* name, std::size_t len, std::size_t* memory, int* major, int* minor) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  std::snprintf(name, len, "%s", p.name);
  *memory = p.totalGlobalMem;
  *major = p.major;
  *minor = p.minor;
  return true;
}

ComputeApi make_compute() {
  ComputeApi a;
#define TROUPE_OP_FILL(name, params) a.name = static_cast<void(*) params>(&impl::gpu::name);
  TROUPE_COMPUTE_OPS(TROUPE_OP_FILL)
#undef TROUPE_OP_FILL
  a.bind = &impl::gpu::bind;
  a.unary = &impl::gpu::unary;
  a.softmax_xent_t = static_cast<decltype(a.softmax_xent_t)>(&impl::gpu::softmax_xent);
  a.count_correct_t = static_cast<decltype(a.count_correct_t)>(&impl::gpu::count_correct);
  a.linear_forward_t = static_cast<decltype(a.linear_forward_t)>(&impl::gpu::linear_forward);
  a.linear_backward_t = static_cast<decltype(a.linear_backward_t)>(&impl::gpu::linear_backward);
  a.cast = &impl::gpu::cast;
  a.device_count = &plugin::device_count;
  a.stream_create = &plugin::stream_create;
  a.stream_destroy = &plugin::stream_destroy;
  a.stream_sync = &plugin::stream_sync;
  a.alloc = &plugin::alloc;
  a.free = &plugin::free;
  a.copy = &plugin::copy;
  a.fill = &plugin::fill;
  a.copy_strided = &plugin::copy_strided;
  a.capture_begin = &plugin::capture_begin;
  a.capture_end = &plugin::capture_end;
  a.instantiate = &plugin::instantiate;
  a.launch = &plugin::launch;
  a.graph_destroy = &plugin::graph_destroy;
  return a;
}

#ifdef TROUPE_HAVE_NCCL
coll::gpu::NcclApi make_nccl() {
  coll::gpu::NcclApi n;
#define TROUPE_API_FILL(f) n.f = &::f;
  TROUPE_NCCL_API(TROUPE_API_FILL)
#undef TROUPE_API_FILL
  return n;
}
#endif

coll::gpu::CudaRuntimeApi make_runtime() {
  coll::gpu::CudaRuntimeApi r;
#define TROUPE_API_FILL(f) r.f = &::f;
  TROUPE_CUDART_API(TROUPE_API_FILL)
#undef TROUPE_API_FILL
  r.cudaMalloc = static_cast<cudaError_t (*)(void**, std::size_t)>(&::cudaMalloc);
  r.reduce_spread = &coll::cuda::reduce_spread;
#ifdef TROUPE_HAVE_NCCL
  static const coll::gpu::NcclApi nccl = make_nccl();
  r.nccl = &nccl;
#endif
  return r;
}

}  // namespace
}  // namespace troupe::compute

extern "C" __attribute__((visibility("default"))) const troupe::detail::CudaPlugin* troupe_cuda_plugin(int version) {
  using namespace troupe;
  if (version != detail::kCudaPluginVersion) return nullptr;
  static const compute::ComputeApi compute_api = compute::make_compute();
  static const coll::gpu::CudaRuntimeApi runtime_api = compute::make_runtime();
  static const detail::CudaPlugin plugin = [] {
    detail::CudaPlugin p;
    p.version = detail::kCudaPluginVersion;
    p.device_count = &compute::device_count;
    p.device_info = &compute::device_info;
    p.runtime_api = &runtime_api;
    p.compute_api = &compute_api;
    return p;
  }();
  return &plugin;
}
