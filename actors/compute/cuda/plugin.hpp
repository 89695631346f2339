#pragma once
// Inside the CUDA plugin: the entries of its compute table that are not the
// operations of ops_impl.hpp (memory.cu, graph.cu). Plain types: the .cu
// files build as C++17.
#include <cstddef>
#include <cstdint>

namespace troupe::compute::plugin {

int device_count();
void* stream_create(int device);
void stream_destroy(void* stream, int device);
void stream_sync(void* stream);
void* alloc(std::size_t bytes, int device);
void free(void* p, int device);
void copy(void* dst, int dst_device, const void* src, int src_device, std::size_t bytes, void* stream, bool wait);
void fill(float* p, std::size_t n, float value, int device, void* stream, bool wait);
void copy_strided(float* dst, const float* src, std::int64_t rows, std::int64_t cols, std::int64_t row_stride,
                  std::int64_t col_stride, int device, void* stream, bool wait);
void capture_begin(void* stream, int device);
void* capture_end(void* stream, const char* failure, std::size_t* nodes);
void* instantiate(void* graph);
void launch(void* exec, void* stream);
void graph_destroy(void* graph, void* exec);

}  // namespace troupe::compute::plugin
