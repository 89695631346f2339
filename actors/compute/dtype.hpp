#pragma once
// Element types of tensors (kept apart from tensor.hpp so that CUDA sources,
// compiled as C++17, can name them).
#include <cstddef>
#include <cstdint>

namespace troupe::compute {

enum class DType : std::uint8_t { f32 = 0, f16 = 1, bf16 = 2, i32 = 3 };

std::size_t dtype_size(DType t) noexcept;
const char* dtype_name(DType t) noexcept;

}  // namespace troupe::compute
