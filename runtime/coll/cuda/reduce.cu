#include "runtime/coll/cuda/reduce.hpp"

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace troupe::coll::cuda {

namespace {

struct Ptrs {
  void* p[kMaxPtrs];
};

template <class T>
__device__ T combine(T a, T b, int op) {
  switch (op) {
    case 2: return a > b ? a : b;  // max
    case 3: return a < b ? a : b;  // min
    default: return a + b;         // sum, avg
  }
}

template <class T>
__global__ void reduce_spread_kernel(Ptrs srcs, int n_src, Ptrs dsts, int n_dst, std::size_t count, int op,
                                     std::size_t avg_by) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count; k += stride) {
    T acc = static_cast<const T*>(srcs.p[0])[k];
    for (int i = 1; i < n_src; ++i) acc = combine(acc, static_cast<const T*>(srcs.p[i])[k], op);
    if (op == 1) acc = static_cast<T>(acc / static_cast<T>(avg_by));
    for (int j = 0; j < n_dst; ++j) static_cast<T*>(dsts.p[j])[k] = acc;
  }
}

// Half elements (bf16, f16 bits): combined in float32, rounded once at the end.
template <class H>
__global__ void reduce_spread_half(Ptrs srcs, int n_src, Ptrs dsts, int n_dst, std::size_t count, int op,
                                   std::size_t avg_by) {
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t k = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < count; k += stride) {
    float acc = static_cast<float>(static_cast<const H*>(srcs.p[0])[k]);
    for (int i = 1; i < n_src; ++i) acc = combine(acc, static_cast<float>(static_cast<const H*>(srcs.p[i])[k]), op);
    if (op == 1) acc = acc / static_cast<float>(avg_by);
    const H out = H(acc);
    for (int j = 0; j < n_dst; ++j) static_cast<H*>(dsts.p[j])[k] = out;
  }
}

template <class H>
cudaError_t launch_half(const Ptrs& s, int ns, const Ptrs& d, int nd, std::size_t count, int op, std::size_t avg_by,
                        cudaStream_t stream) {
  const int threads = 512;
  std::size_t blocks = (count + threads - 1) / threads;
  if (blocks > 132 * 8) blocks = 132 * 8;
  reduce_spread_half<H><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(s, ns, d, nd, count, op, avg_by);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch(const Ptrs& s, int ns, const Ptrs& d, int nd, std::size_t count, int op, std::size_t avg_by,
                   cudaStream_t stream) {
  const int threads = 512;
  std::size_t blocks = (count + threads - 1) / threads;
  if (blocks > 132 * 8) blocks = 132 * 8;  // grid-stride beyond a few waves
  reduce_spread_kernel<T><<<static_cast<unsigned>(blocks), threads, 0, stream>>>(s, ns, d, nd, count, op, avg_by);
  return cudaGetLastError();
}

}  // namespace

cudaError_t reduce_spread(void* const* srcs, int n_src, void* const* dsts, int n_dst, std::size_t count, int dtype,
                          int op, std::size_t avg_by, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  if (n_src < 1 || n_src > kMaxPtrs || n_dst < 0 || n_dst > kMaxPtrs) return cudaErrorInvalidValue;
  Ptrs s{}, d{};
  for (int i = 0; i < n_src; ++i) s.p[i] = srcs[i];
  for (int j = 0; j < n_dst; ++j) d.p[j] = dsts[j];
  switch (dtype) {
    case 0: return launch<float>(s, n_src, d, n_dst, count, op, avg_by, stream);
    case 1: return launch<double>(s, n_src, d, n_dst, count, op, avg_by, stream);
    case 2: return launch<std::int32_t>(s, n_src, d, n_dst, count, op, avg_by, stream);
    case 3: return launch<std::int64_t>(s, n_src, d, n_dst, count, op, avg_by, stream);
    case 4: return launch<std::uint8_t>(s, n_src, d, n_dst, count, op, avg_by, stream);
    case 5: return launch_half<__nv_bfloat16>(s, n_src, d, n_dst, count, op, avg_by, stream);
    case 6: return launch_half<__half>(s, n_src, d, n_dst, count, op, avg_by, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace troupe::coll::cuda
