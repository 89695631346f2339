#include "actors/compute/half.hpp"

#include <cstring>

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/gpu_ops.hpp"
#include "actors/compute/ops_impl.hpp"

namespace troupe::compute {

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

bool is_castable(DType t) noexcept { return t == DType::f32 || is_half(t); }

float load(DType t, const void* p, std::int64_t i) noexcept {
  switch (t) {
    case DType::bf16: return from_bf16(static_cast<const std::uint16_t*>(p)[i]);
    case DType::f16: return from_f16(static_cast<const std::uint16_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

void store(DType t, void* p, std::int64_t i, float v) noexcept {
  switch (t) {
    case DType::bf16: static_cast<std::uint16_t*>(p)[i] = to_bf16(v); break;
    case DType::f16: static_cast<std::uint16_t*>(p)[i] = to_f16(v); break;
    default: static_cast<float*>(p)[i] = v;
  }
}

}  // namespace

bool is_half(DType t) noexcept { return t == DType::bf16 || t == DType::f16; }

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

void cast(const Tensor& src, Tensor& dst, bool accumulate) {
  if (!src.defined() || !dst.defined()) throw ShapeError("cast: an undefined tensor");
  if (!is_castable(src.dtype()) || !is_castable(dst.dtype()))
    throw ShapeError(fmt::format("cast of {} into {}: only f32, bf16 and f16 convert", src.describe(), dst.describe()));
  if (src.shape() != dst.shape())
    throw ShapeError(fmt::format("cast of {} into {}: the shapes differ", src.describe(), dst.describe()));
  if (src.device() != dst.device())
    throw ShapeError(fmt::format("cast of {} into {}: one device only (copy first)", src.describe(), dst.describe()));
  if (!src.contiguous() || !dst.contiguous())
    throw ShapeError(fmt::format("cast of {} into {}: both must be contiguous", src.describe(), dst.describe()));
  const auto n = src.numel();
  if (src.device().is_cuda()) {
    const auto& ops = gpu_ops();
    ops.bind(src.device().index, current_stream());
    ops.cast(src.dtype(), src.raw(), dst.dtype(), dst.raw(), n, accumulate);
    return;
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const float v = load(src.dtype(), src.raw(), i);
    store(dst.dtype(), dst.raw(), i, accumulate ? load(dst.dtype(), dst.raw(), i) + v : v);
  }
}

Tensor cast_to(const Tensor& t, DType d) {
  if (!t.defined()) throw ShapeError("cast: an undefined tensor");
  const Tensor src = t.contiguous() ? t : t.clone();
  Tensor out = Tensor::empty(t.shape(), d, t.device());
  cast(src, out);
  return out;
}

}  // namespace troupe::compute
