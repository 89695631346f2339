#pragma once
// Element types of tensors (kept apart from tensor.hpp so that CUDA sources,
// compiled as C++17, can name them).
#include <cstddef>
#include <cstdint>

namespace troupe::compute {

enum class DType : std::uint8_t { f32 = 0, f16 = 1, bf16 = 2, i32 = 3 };

// Inline: the CUDA plugin uses them too, and links nothing of troupe's.
inline std::size_t dtype_size(DType t) noexcept { return t == DType::f32 || t == DType::i32 ? 4 : 2; }

inline const char* dtype_name(DType t) noexcept {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::i32: return "i32";
  }
  return "?";
}

}  // namespace troupe::compute
