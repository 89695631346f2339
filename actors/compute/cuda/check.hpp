#pragma once
// One check for every CUDA and cuBLAS call (NCCL's NCCLCHECK): a failure
// becomes a DeviceError naming the call, its result and the call site.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "actors/compute/errors.hpp"

namespace troupe::compute::cuda {

[[noreturn]] void fail_cuda(cudaError_t e, const char* call, const char* file, int line);
[[noreturn]] void fail_cublas(cublasStatus_t s, const char* call, const char* file, int line);

}  // namespace troupe::compute::cuda

#define TROUPE_CUDA_CHECK(call)                                                                 \
  do {                                                                                          \
    cudaError_t troupe_e_ = (call);                                                             \
    if (troupe_e_ != cudaSuccess) ::troupe::compute::cuda::fail_cuda(troupe_e_, #call, __FILE__, __LINE__); \
  } while (0)

#define TROUPE_CUBLAS_CHECK(call)                                                                      \
  do {                                                                                                 \
    cublasStatus_t troupe_s_ = (call);                                                                 \
    if (troupe_s_ != CUBLAS_STATUS_SUCCESS) ::troupe::compute::cuda::fail_cublas(troupe_s_, #call, __FILE__, __LINE__); \
  } while (0)
