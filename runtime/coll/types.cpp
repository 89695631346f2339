#include "runtime/coll/types.hpp"

#include "runtime/coll/backend.hpp"

#include <algorithm>

namespace troupe::coll {

const char* to_string(DType d) noexcept {
  switch (d) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i32: return "int32";
    case DType::i64: return "int64";
    case DType::u8: return "uint8";
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
  }
  return 1;
}

namespace {

template <class T>
void reduce3_t(T* out, const T* a, const T* b, std::size_t n, Op op) noexcept {
  // `out` may alias `a` (reduce_into); the loops stay simple so they vectorise.
  switch (op) {
    case Op::sum:
    case Op::avg:
      for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(a[i] + b[i]);
      return;
    case Op::max:
      for (std::size_t i = 0; i < n; ++i) out[i] = std::max(a[i], b[i]);
      return;
    case Op::min:
      for (std::size_t i = 0; i < n; ++i) out[i] = std::min(a[i], b[i]);
      return;
  }
}

template <class T>
void scale_t(T* p, std::size_t n, std::size_t by) noexcept {
  if constexpr (std::is_floating_point_v<T>) {
    const T inv = T(1) / static_cast<T>(by);
    for (std::size_t i = 0; i < n; ++i) p[i] *= inv;
  } else {
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<T>(p[i] / static_cast<T>(by));
  }
}

}  // namespace

void reduce3(void* out, const void* a, const void* b, std::size_t n, DType d, Op op) noexcept {
  switch (d) {
    case DType::f32: return reduce3_t(static_cast<float*>(out), static_cast<const float*>(a), static_cast<const float*>(b), n, op);
    case DType::f64: return reduce3_t(static_cast<double*>(out), static_cast<const double*>(a), static_cast<const double*>(b), n, op);
    case DType::i32: return reduce3_t(static_cast<std::int32_t*>(out), static_cast<const std::int32_t*>(a), static_cast<const std::int32_t*>(b), n, op);
    case DType::i64: return reduce3_t(static_cast<std::int64_t*>(out), static_cast<const std::int64_t*>(a), static_cast<const std::int64_t*>(b), n, op);
    case DType::u8: return reduce3_t(static_cast<std::uint8_t*>(out), static_cast<const std::uint8_t*>(a), static_cast<const std::uint8_t*>(b), n, op);
  }
}

void reduce_into(void* out, const void* in, std::size_t n, DType d, Op op) noexcept { reduce3(out, out, in, n, d, op); }

void scale_down(void* buf, std::size_t n, DType d, std::size_t by) noexcept {
  if (by <= 1) return;
  switch (d) {
    case DType::f32: return scale_t(static_cast<float*>(buf), n, by);
    case DType::f64: return scale_t(static_cast<double*>(buf), n, by);
    case DType::i32: return scale_t(static_cast<std::int32_t*>(buf), n, by);
    case DType::i64: return scale_t(static_cast<std::int64_t*>(buf), n, by);
    case DType::u8: return scale_t(static_cast<std::uint8_t*>(buf), n, by);
  }
}

}  // namespace troupe::coll
