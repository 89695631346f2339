#pragma once
// The device side of compute, as the CUDA plugin hands it over
// (runtime/detail/cuda_plugin.hpp): the operations of ops_impl.hpp, device
// memory, streams and graphs, as plain function pointers. ops.cpp, half.cpp
// and device.cpp call through it; cuda/plugin.cpp fills it. No CUDA header.
#include <cstddef>
#include <cstdint>

#include "actors/compute/ops_impl.hpp"

namespace troupe::compute {

struct ComputeApi {
#define TROUPE_OP_ENTRY(name, params) void(*name) params = nullptr;
  TROUPE_COMPUTE_OPS(TROUPE_OP_ENTRY)
#undef TROUPE_OP_ENTRY
  // Any element type.
  void (*bind)(int device, Stream* stream) = nullptr;
  void (*unary)(impl::gpu::Unary op, DType t, const void* a, const void* b, void* out, std::int64_t n) = nullptr;
  void (*softmax_xent_t)(DType t, const void* logits, const std::int32_t* labels, void* dlogits, float* loss,
                         float* correct, std::int64_t B, std::int64_t C) = nullptr;
  void (*count_correct_t)(DType t, const void* logits, const std::int32_t* labels, float* correct, std::int64_t B,
                          std::int64_t C) = nullptr;
  void (*linear_forward_t)(DType t, const void* x, const void* w, const void* b, void* y, std::int64_t B,
                           std::int64_t in, std::int64_t out) = nullptr;
  void (*linear_backward_t)(DType t, const void* x, const void* w, const void* dy, void* dx, void* dw, void* db,
                            std::int64_t B, std::int64_t in, std::int64_t out, bool accumulate) = nullptr;
  void (*cast)(DType from, const void* src, DType to, void* dst, std::int64_t n, bool accumulate) = nullptr;

  // Devices, memory and streams (a stream is its cudaStream_t; null: the
  // legacy default stream).
  int (*device_count)() = nullptr;  ///< 0 when no device or driver answers
  void* (*stream_create)(int device) = nullptr;
  void (*stream_destroy)(void* stream, int device) = nullptr;
  void (*stream_sync)(void* stream) = nullptr;
  void* (*alloc)(std::size_t bytes, int device) = nullptr;
  void (*free)(void* p, int device) = nullptr;
  /// A copy where either side is on a device: async on `stream`; then, with
  /// `wait`, that stream is waited for (null stream: a synchronous copy).
  void (*copy)(void* dst, int dst_device, const void* src, int src_device, std::size_t bytes, void* stream,
               bool wait) = nullptr;
  void (*fill)(float* p, std::size_t n, float value, int device, void* stream, bool wait) = nullptr;
  void (*copy_strided)(float* dst, const float* src, std::int64_t rows, std::int64_t cols, std::int64_t row_stride,
                       std::int64_t col_stride, int device, void* stream, bool wait) = nullptr;

  // CUDA graphs: capture on a stream (thread-local mode), instantiate, replay.
  void (*capture_begin)(void* stream, int device) = nullptr;
  /// Ends the capture; a graph and its node count, or throws DeviceError
  /// (`failure`: why the step failed during capture, if it did).
  void* (*capture_end)(void* stream, const char* failure, std::size_t* nodes) = nullptr;
  void* (*instantiate)(void* graph) = nullptr;
  void (*launch)(void* exec, void* stream) = nullptr;
  void (*graph_destroy)(void* graph, void* exec) = nullptr;
};

/// The plugin's compute table; DeviceError naming why when there is none
/// (a CPU-only build, no plugin, no CUDA runtime on this machine).
const ComputeApi& gpu_ops();
/// The same, or null (never throws).
const ComputeApi* gpu_ops_if_loaded() noexcept;

}  // namespace troupe::compute
