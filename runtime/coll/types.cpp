#include "runtime/coll/types.hpp"

#include "runtime/coll/backend.hpp"

#include <algorithm>
#include <cstring>

namespace troupe::coll {

const char* to_string(DType d) noexcept {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
    case DType::bf16: return "bfloat16";
    case DType::f16: return "float16";
  }
  return "?";
}

const char* to_string(Op o) noexcept {
  switch (o) {
    case Op::sum: return "sum";
    case Op::avg: return "avg";
    case Op::max: return "max";
    case Op::min: return "min";
  }
  return "?";
}

void Backend::p2p_batch(std::span<Transfer> batch, std::uint32_t my_rank) {
  // Per peer, the lower rank sends first and the higher receives first
  // (Megatron orders its exchanges by rank parity the same way).
  auto first_pass = [my_rank](const Transfer& t) { return t.is_send == (my_rank < t.peer); };
  for (int pass = 0; pass < 2; ++pass)
    for (auto& t : batch) {
      if (first_pass(t) != (pass == 0)) continue;
      if (t.is_send)
        send(t.buf, t.n, t.dtype, t.peer);
      else
        recv(t.buf, t.n, t.dtype, t.peer);
      t.done = true;
    }
}

const char* kind_name(std::uint32_t k) noexcept {
  switch (k) {
    case k_allreduce: return "allreduce";
    case k_reduce_scatter: return "reduce_scatter";
    case k_allgather: return "allgather";
    case k_broadcast: return "broadcast";
    case k_barrier: return "barrier";
    case k_alloc: return "alloc";
    case k_send: return "send/recv";
  }
  return "?";
}

std::size_t size_of(DType d) noexcept {
  switch (d) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::i32: return 4;
    case DType::i64: return 8;
    case DType::u8: return 1;
    case DType::bf16:
    case DType::f16: return 2;
  }
  return 1;
}

namespace {

std::uint32_t bits_of(float v) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

float float_of(std::uint32_t u) noexcept {
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

}  // namespace

std::uint16_t to_bf16(float v) noexcept {
  const std::uint32_t u = bits_of(v);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);  // a quiet NaN
  return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

float from_bf16(std::uint16_t b) noexcept { return float_of(static_cast<std::uint32_t>(b) << 16); }

std::uint16_t to_f16(float v) noexcept {
  std::uint32_t u = bits_of(v);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  u &= 0x7FFFFFFFu;
  std::uint16_t h;
  if (u >= 0x47800000u) {  // 65536 and above, infinity, NaN
    h = u > 0x7F800000u ? 0x7E00u : 0x7C00u;
  } else if (u < 0x38800000u) {  // below 2^-14: a subnormal (or zero); adding 0.5 rounds the mantissa for us
    h = static_cast<std::uint16_t>(bits_of(float_of(u) + 0.5f) - 0x3F000000u);
  } else {  // normal: rebias the exponent, round to nearest even (65520 and up round to infinity)
    const std::uint32_t odd = (u >> 13) & 1u;
    u += 0xC8000FFFu + odd;  // (15 - 127) << 23, plus the rounding bias
    h = static_cast<std::uint16_t>(u >> 13);
  }
  return static_cast<std::uint16_t>(h | sign);
}

float from_f16(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // mant * 2^-24
    return float_of(bits_of(v) | sign);
  }
  if (exp == 31) return float_of(sign | 0x7F800000u | (mant << 13));
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

namespace {

// Half elements: each step in float32, rounded back.
template <std::uint16_t (*To)(float), float (*From)(std::uint16_t)>
struct Half {
  static float op(float a, float b, Op o) noexcept {
    switch (o) {
      case Op::max: return a < b ? b : a;
      case Op::min: return b < a ? b : a;
      default: return a + b;
    }
  }
  static void combine(std::uint16_t* out, const std::uint16_t* a, const std::uint16_t* b, std::size_t n,
                      Op o) noexcept {
    for (std::size_t i = 0; i < n; ++i) out[i] = To(op(From(a[i]), From(b[i]), o));
  }
  static void scale(std::uint16_t* p, std::size_t n, std::size_t by) noexcept {
    const float inv = 1.0f / static_cast<float>(by);
    for (std::size_t i = 0; i < n; ++i) p[i] = To(From(p[i]) * inv);
  }
};
using HalfB = Half<to_bf16, from_bf16>;
using HalfF = Half<to_f16, from_f16>;

// The kernels below are memory-bound loops: built with -O3 (runtime/CMakeLists)
// and with restrict pointers so they vectorise with no aliasing checks, and
// cloned for AVX2 where the CPU has it (the L2-resident blocks of the shared-
// memory allreduce run at cache speed, where the width shows).
template <class T>
inline void combine(T* __restrict out, const T* __restrict a, const T* __restrict b, std::size_t n, Op op) noexcept {
  switch (op) {
    case Op::sum:
    case Op::avg:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(a[i] + b[i]);
      return;
    case Op::max:
      for (std::size_t i = 0; i < n; ++i) out[i] = a[i] < b[i] ? b[i] : a[i];
      return;
    case Op::min:
      for (std::size_t i = 0; i < n; ++i) out[i] = b[i] < a[i] ? b[i] : a[i];
      return;
  }
}

template <class T>
inline void combine_into(T* __restrict out, const T* __restrict in, std::size_t n, Op op) noexcept {
  switch (op) {
    case Op::sum:
    case Op::avg:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(out[i] + in[i]);
      return;
    case Op::max:
      for (std::size_t i = 0; i < n; ++i) out[i] = out[i] < in[i] ? in[i] : out[i];
      return;
    case Op::min:
      for (std::size_t i = 0; i < n; ++i) out[i] = in[i] < out[i] ? in[i] : out[i];
      return;
  }
}

template <class T>
inline void scale_t(T* p, std::size_t n, std::size_t by) noexcept {
  if constexpr (std::is_floating_point_v<T>) {
    const T inv = T(1) / static_cast<T>(by);
    for (std::size_t i = 0; i < n; ++i) p[i] *= inv;
  } else {
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<T>(p[i] / static_cast<T>(by));
  }
}

}  // namespace

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define TROUPE_KERNEL_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TROUPE_KERNEL_CLONES
#endif

TROUPE_KERNEL_CLONES
void reduce3(void* out, const void* a, const void* b, std::size_t n, DType d, Op op) noexcept {
  if (out == a) return reduce_into(out, b, n, d, op);
  switch (d) {
    case DType::f32: return combine(static_cast<float*>(out), static_cast<const float*>(a), static_cast<const float*>(b), n, op);
    case DType::f64: return combine(static_cast<double*>(out), static_cast<const double*>(a), static_cast<const double*>(b), n, op);
    case DType::i32: return combine(static_cast<std::int32_t*>(out), static_cast<const std::int32_t*>(a), static_cast<const std::int32_t*>(b), n, op);
    case DType::i64: return combine(static_cast<std::int64_t*>(out), static_cast<const std::int64_t*>(a), static_cast<const std::int64_t*>(b), n, op);
    case DType::u8: return combine(static_cast<std::uint8_t*>(out), static_cast<const std::uint8_t*>(a), static_cast<const std::uint8_t*>(b), n, op);
    case DType::bf16:
      return HalfB::combine(static_cast<std::uint16_t*>(out), static_cast<const std::uint16_t*>(a),
                            static_cast<const std::uint16_t*>(b), n, op);
    case DType::f16:
      return HalfF::combine(static_cast<std::uint16_t*>(out), static_cast<const std::uint16_t*>(a),
                            static_cast<const std::uint16_t*>(b), n, op);
  }
}

TROUPE_KERNEL_CLONES
void reduce_into(void* out, const void* in, std::size_t n, DType d, Op op) noexcept {
  switch (d) {
    case DType::f32: return combine_into(static_cast<float*>(out), static_cast<const float*>(in), n, op);
    case DType::f64: return combine_into(static_cast<double*>(out), static_cast<const double*>(in), n, op);
    case DType::i32: return combine_into(static_cast<std::int32_t*>(out), static_cast<const std::int32_t*>(in), n, op);
    case DType::i64: return combine_into(static_cast<std::int64_t*>(out), static_cast<const std::int64_t*>(in), n, op);
    case DType::u8: return combine_into(static_cast<std::uint8_t*>(out), static_cast<const std::uint8_t*>(in), n, op);
    case DType::bf16:
      return HalfB::combine(static_cast<std::uint16_t*>(out), static_cast<const std::uint16_t*>(out),
                            static_cast<const std::uint16_t*>(in), n, op);
    case DType::f16:
      return HalfF::combine(static_cast<std::uint16_t*>(out), static_cast<const std::uint16_t*>(out),
                            static_cast<const std::uint16_t*>(in), n, op);
  }
}

TROUPE_KERNEL_CLONES
void scale_down(void* buf, std::size_t n, DType d, std::size_t by) noexcept {
  if (by <= 1) return;
  switch (d) {
    case DType::f32: return scale_t(static_cast<float*>(buf), n, by);
    case DType::f64: return scale_t(static_cast<double*>(buf), n, by);
    case DType::i32: return scale_t(static_cast<std::int32_t*>(buf), n, by);
    case DType::i64: return scale_t(static_cast<std::int64_t*>(buf), n, by);
    case DType::u8: return scale_t(static_cast<std::uint8_t*>(buf), n, by);
    case DType::bf16: return HalfB::scale(static_cast<std::uint16_t*>(buf), n, by);
    case DType::f16: return HalfF::scale(static_cast<std::uint16_t*>(buf), n, by);
  }
}

}  // namespace troupe::coll
