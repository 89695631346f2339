#pragma once
// Element types of tensors (kept apart from tensor.hpp so that CUDA sources,
// compiled as C++17, can name them).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace troupe::compute {

enum class DType : std::uint8_t { f32 = 0, f16 = 1, bf16 = 2, i32 = 3 };

}  // namespace troupe::compute

namespace troupe {
template <class E>
struct EnumWords;  // runtime/enum_words.hpp (C++20) reads these; here they stay C++17
template <>
struct EnumWords<compute::DType> {
  static constexpr std::array<std::string_view, 4> words{"f32", "f16", "bf16", "i32"};
};
}  // namespace troupe

namespace troupe::compute {

// Inline: the CUDA plugin uses them too, and links nothing of troupe's.
inline std::size_t dtype_size(DType t) noexcept { return t == DType::f32 || t == DType::i32 ? 4 : 2; }

/// "f32", "f16", "bf16", "i32" (parse_enum<DType> reads them).
inline const char* dtype_name(DType t) noexcept {
  const auto i = static_cast<std::size_t>(t);
  return i < EnumWords<DType>::words.size() ? EnumWords<DType>::words[i].data() : "?";
}
inline std::string_view to_string(DType t) noexcept { return dtype_name(t); }

}  // namespace troupe::compute
