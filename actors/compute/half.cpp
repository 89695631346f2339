#include "actors/compute/half.hpp"

#include <cstring>

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/compute/ops.hpp"
#include "actors/compute/gpu_ops.hpp"
#include "actors/compute/ops_impl.hpp"
#include "runtime/coll/types.hpp"

namespace troupe::compute {

namespace {

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

std::uint16_t to_bf16(float v) noexcept { return coll::to_bf16(v); }
float from_bf16(std::uint16_t b) noexcept { return coll::from_bf16(b); }
std::uint16_t to_f16(float v) noexcept { return coll::to_f16(v); }
float from_f16(std::uint16_t h) noexcept { return coll::from_f16(h); }

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
