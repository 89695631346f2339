#pragma once
// The device-local backend's one kernel: reduce a chunk across every rank's
// buffer on one GPU and write the result into every destination.
// Plain types only: the .cu side builds as C++17 without the runtime headers.
#include <cstddef>
#include <cuda_runtime_api.h>

namespace troupe::coll::cuda {

inline constexpr int kMaxPtrs = 64;

/// dtype: the value of coll::DType (f32, f64, i32, i64, u8, bf16, f16); op: coll::Op
/// (sum, avg, max, min). out[k] = op over srcs[i][k] (avg divides by
/// `avg_by`), stored to dsts[j][k] for every j. Enqueued on `stream`.
cudaError_t reduce_spread(void* const* srcs, int n_src, void* const* dsts, int n_dst, std::size_t count, int dtype,
                          int op, std::size_t avg_by, cudaStream_t stream);

}  // namespace troupe::coll::cuda
