#pragma once
// Element types, reductions and errors shared by every collective backend.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "runtime/enum_words.hpp"
#include "runtime/errors.hpp"

namespace troupe::coll {

enum class DType : std::uint8_t { f32, f64, i32, i64, u8, bf16, f16 };
enum class Op : std::uint8_t { sum, avg, max, min };

/// Which backend carries a group (GroupOptions::backend; "auto" in text).
/// Host buffers: shm (every rank on one host) or tcp (any); device buffers:
/// nccl (a GPU per rank) or cuda_local (one GPU for all). automatic picks
/// one as the group forms: a formed group never has it.
enum class BackendKind : std::uint8_t { automatic, shm, tcp, nccl, cuda_local };
/// Where a group's buffers live.
enum class Memory : std::uint8_t { host, cuda };

}  // namespace troupe::coll

template <>
struct troupe::EnumWords<troupe::coll::BackendKind> {
  static constexpr std::array<std::string_view, 5> words{"auto", "shm", "tcp", "nccl", "cuda_local"};
};
template <>
struct troupe::EnumWords<troupe::coll::Memory> {
  static constexpr std::array<std::string_view, 2> words{"host", "cuda"};
};

namespace troupe::coll {

const char* to_string(DType d) noexcept;
const char* to_string(Op o) noexcept;
/// "auto", "shm", "tcp", "nccl", "cuda_local" (parse_enum<BackendKind> reads them).
constexpr std::string_view to_string(BackendKind b) noexcept { return enum_word(b); }
/// "host", "cuda" (parse_enum<Memory> reads them).
constexpr std::string_view to_string(Memory m) noexcept { return enum_word(m); }
std::size_t size_of(DType d) noexcept;

/// Half-precision elements as collectives carry them: the bits of a bfloat16
/// or an IEEE float16 number (what a half tensor or a device holds). Host
/// backends reduce them in float32 and round each partial result to nearest
/// even, as NCCL does hop by hop; the result matches a float32 reduction to
/// within the format's rounding of each step.
struct bf16 {
  std::uint16_t bits = 0;
};
struct f16 {
  std::uint16_t bits = 0;
};
/// Round to nearest even; NaN stays NaN, too large is infinity.
std::uint16_t to_bf16(float v) noexcept;
std::uint16_t to_f16(float v) noexcept;
float from_bf16(std::uint16_t bits) noexcept;
float from_f16(std::uint16_t bits) noexcept;

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::f32;
  else if constexpr (std::is_same_v<T, double>) return DType::f64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::i32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::i64;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return DType::u8;
  else if constexpr (std::is_same_v<T, bf16>) return DType::bf16;
  else if constexpr (std::is_same_v<T, f16>) return DType::f16;
  else static_assert(sizeof(T) == 0, "collectives take float, double, int32, int64, uint8, coll::bf16 or coll::f16 elements");
}

/// A collective failed on this rank: a member died, the ranks disagree about
/// the operation, or the group was destroyed. The message names the group and
/// the rank at fault. Every later operation on the group fails the same way.
class CollectiveError : public Error {
 public:
  using Error::Error;
};

/// `out[i] = op(out[i], in[i])` for n elements (avg sums; the caller divides); the
/// ranges must not overlap.
void reduce_into(void* out, const void* in, std::size_t n, DType d, Op op) noexcept;
/// `out[i] = op(a[i], b[i])`; `out` may be `a`, and must not overlap `b` otherwise.
void reduce3(void* out, const void* a, const void* b, std::size_t n, DType d, Op op) noexcept;
/// Divides n elements by `by` (for avg; integers round toward zero).
void scale_down(void* buf, std::size_t n, DType d, std::size_t by) noexcept;

}  // namespace troupe::coll
