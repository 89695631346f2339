#pragma once
// A group member for the collective tests: runs one operation on data it
// makes from its rank and returns what it got, as doubles, so the test can
// check it against a CPU reference.
#include <cmath>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "runtime/coll/create.hpp"
#include "runtime/coll/detail/gpu.hpp"
#include "runtime/device.hpp"
#include "runtime/troupe.hpp"

namespace troupe::test {

/// The value rank `r` contributes at index i (small, exact in every dtype).
inline double coll_input(std::size_t r, std::size_t i) { return static_cast<double>((r + 1) * (i % 7) + (i % 3)); }

/// Element conversions for every dtype the collectives take (half types as their bits).
template <class T>
T to_elem(double v) {
  if constexpr (std::is_same_v<T, coll::bf16>) return T{coll::to_bf16(static_cast<float>(v))};
  else if constexpr (std::is_same_v<T, coll::f16>) return T{coll::to_f16(static_cast<float>(v))};
  else return static_cast<T>(v);
}
template <class T>
double from_elem(T v) {
  if constexpr (std::is_same_v<T, coll::bf16>) return coll::from_bf16(v.bits);
  else if constexpr (std::is_same_v<T, coll::f16>) return coll::from_f16(v.bits);
  else return static_cast<double>(v);
}
template <class T>
std::vector<double> to_doubles(std::span<const T> s) {
  std::vector<double> out;
  out.reserve(s.size());
  for (const T& v : s) out.push_back(from_elem(v));
  return out;
}

struct CollCase {
  std::string op;        ///< allreduce, reduce_scatter, allgather, broadcast, sendrecv, barrier
  int dtype = 0;         ///< coll::DType
  std::size_t n = 0;     ///< elements per rank (the output size for reduce_scatter)
  int reduce = 0;        ///< coll::Op
  std::uint32_t root = 0;
  bool heap = false;     ///< use a group-allocated buffer
  std::string group = "t";
  bool device = false;   ///< buffers in GPU memory (a device group)
  std::int32_t own_rank = -1;  ///< heap allreduce: this rank allocates too, but passes its own buffer
  TROUPE_FIELDS(op, dtype, n, reduce, root, heap, group, device, own_rank)
};

class CollMember {
 public:
  CollMember() = default;

  Task<std::vector<double>> run(CollCase c) {
    if (c.device) {
      switch (static_cast<coll::DType>(c.dtype)) {
        case coll::DType::f32: co_return co_await typed_device<float>(c);
        case coll::DType::f64: co_return co_await typed_device<double>(c);
        case coll::DType::i32: co_return co_await typed_device<std::int32_t>(c);
        case coll::DType::i64: co_return co_await typed_device<std::int64_t>(c);
        case coll::DType::u8: co_return co_await typed_device<std::uint8_t>(c);
        case coll::DType::bf16: co_return co_await typed_device<coll::bf16>(c);
        case coll::DType::f16: co_return co_await typed_device<coll::f16>(c);
      }
    }
    switch (static_cast<coll::DType>(c.dtype)) {
      case coll::DType::f32: co_return co_await typed<float>(c);
      case coll::DType::f64: co_return co_await typed<double>(c);
      case coll::DType::i32: co_return co_await typed<std::int32_t>(c);
      case coll::DType::i64: co_return co_await typed<std::int64_t>(c);
      case coll::DType::u8: co_return co_await typed<std::uint8_t>(c);
      case coll::DType::bf16: co_return co_await typed<coll::bf16>(c);
      case coll::DType::f16: co_return co_await typed<coll::f16>(c);
    }
    co_return std::vector<double>{};
  }
  int pid() const { return static_cast<int>(::getpid()); }
  /// init_group from inside the actor: joins group `o.name` as `rank` of
  /// `world`; returns "rank/size/backend" as the group reports them.
  Task<std::string> init(std::uint32_t world, std::uint32_t rank, coll::GroupOptions o) {
    auto g = co_await coll::init_group(world, rank, o);
    if (coll::group(o.name) != g) throw Error("coll::group() does not find the group init_group formed");
    co_return fmt::format("{}/{}/{}", g->rank(), g->size(), g->backend());
  }

 private:
  // A ring: send to r+1, receive from r-1 (even ranks send first).
  template <class T>
  static Task<void> ring(coll::Group& g, std::span<T> mine, std::span<T> got) {
    const auto r = g.rank(), W = g.size();
    const auto next = (r + 1) % W, prev = (r + W - 1) % W;
    if (r % 2 == 0) {
      co_await g.send(std::span<const T>(mine), next);
      co_await g.recv(got, prev);
    } else {
      co_await g.recv(got, prev);
      co_await g.send(std::span<const T>(mine), next);
    }
  }

  // The same cases with the buffers in GPU memory: inputs are uploaded
  // before the operation, results downloaded after it.
  template <class T>
  Task<std::vector<double>> typed_device(CollCase c) {
    auto g = coll::group(c.group);
    const std::size_t r = g->rank(), W = g->size();
    const auto op = static_cast<coll::Op>(c.reduce);
    std::deque<coll::gpu::DeviceBuffer> own;
    auto host = [&](std::size_t count) {
      std::vector<T> v(count);
      for (std::size_t i = 0; i < count; ++i) v[i] = to_elem<T>(coll_input(r, i));
      return v;
    };
    auto make = [&](std::size_t count, bool heap) -> Task<std::span<T>> {
      if (heap) co_return co_await g->template alloc<T>(count);
      own.emplace_back(count * sizeof(T));
      co_return std::span<T>(static_cast<T*>(own.back().data()), count);
    };
    auto up = [](std::span<T> d, const std::vector<T>& h) { coll::gpu::copy_to_device(d.data(), h.data(), h.size() * sizeof(T)); };
    auto down = [](std::span<T> d) {
      std::vector<T> h(d.size());
      coll::gpu::copy_to_host(h.data(), d.data(), h.size() * sizeof(T));
      return to_doubles<T>(h);
    };
    if (c.op == "allreduce") {
      auto buf = co_await make(c.n, c.heap);
      up(buf, host(c.n));
      co_await g->allreduce(buf, op);
      co_return down(buf);
    }
    if (c.op == "reduce_scatter") {
      auto in = co_await make(c.n * W, false);
      auto res = co_await make(c.n, false);
      up(in, host(c.n * W));
      co_await g->reduce_scatter(std::span<const T>(in), res, op);
      co_return down(res);
    }
    if (c.op == "allgather") {
      auto in = co_await make(c.n, false);
      auto res = co_await make(c.n * W, false);
      up(in, host(c.n));
      co_await g->allgather(std::span<const T>(in), res);
      co_return down(res);
    }
    if (c.op == "broadcast") {
      auto buf = co_await make(c.n, c.heap);
      up(buf, r == c.root ? host(c.n) : std::vector<T>(c.n));
      co_await g->broadcast(buf, c.root);
      co_return down(buf);
    }
    if (c.op == "sendrecv") {
      auto mine = co_await make(c.n, false);
      auto got = co_await make(c.n, false);
      up(mine, host(c.n));
      if (W == 1) co_return down(mine);
      co_await ring<T>(*g, mine, got);
      co_return down(got);
    }
    if (c.op == "barrier") {
      co_await g->barrier();
      co_return std::vector<double>{};
    }
    throw UsageError("unknown op " + c.op);
  }

  template <class T>
  Task<std::vector<double>> typed(CollCase c) {
    auto g = coll::group(c.group);
    const std::size_t r = g->rank(), W = g->size();
    const auto op = static_cast<coll::Op>(c.reduce);
    std::vector<T> own;
    std::span<T> buf;
    auto fill = [&](std::span<T> s, std::size_t count) {
      for (std::size_t i = 0; i < count; ++i) s[i] = to_elem<T>(coll_input(r, i));
    };
    auto out = [](std::span<const T> s) { return to_doubles<T>(s); };
    auto get = [&](std::size_t count) -> Task<std::span<T>> {
      if (c.heap) co_return co_await g->template alloc<T>(count);
      own.assign(count, T{});
      co_return std::span<T>(own);
    };
    if (c.op == "allreduce") {
      buf = co_await get(c.n);
      if (c.heap && static_cast<std::int32_t>(r) == c.own_rank) {
        own.assign(c.n, T{});
        buf = std::span<T>(own);
      }
      fill(buf, c.n);
      co_await g->allreduce(buf, op);
      co_return out(buf);
    }
    if (c.op == "reduce_scatter") {
      std::vector<T> in(c.n * W);
      fill(in, in.size());
      std::vector<T> res(c.n);
      co_await g->reduce_scatter(std::span<const T>(in), std::span<T>(res), op);
      co_return out(res);
    }
    if (c.op == "allgather") {
      std::vector<T> in(c.n);
      fill(in, c.n);
      std::vector<T> res(c.n * W);
      co_await g->allgather(std::span<const T>(in), std::span<T>(res));
      co_return out(res);
    }
    if (c.op == "broadcast") {
      buf = co_await get(c.n);
      if (r == c.root) fill(buf, c.n);
      co_await g->broadcast(buf, c.root);
      co_return out(buf);
    }
    if (c.op == "sendrecv") {  // a ring: send to r+1, receive from r-1
      std::vector<T> mine(c.n), got(c.n);
      fill(mine, c.n);
      if (W == 1) co_return out(mine);
      co_await ring<T>(*g, mine, got);
      co_return out(got);
    }
    if (c.op == "barrier") {
      co_await g->barrier();
      co_return std::vector<double>{};
    }
    throw UsageError("unknown op " + c.op);
  }
};

/// The gpu suites: true when a GPU answers, else a warning that says why not.
inline bool gpu_or_warn() {
  if (!devices().gpus.empty()) return true;
  WARN("no CUDA device here (" << devices().status << "): the GPU cases check nothing");
  return false;
}

/// A device group's options (buffers in GPU memory) for the gpu suites.
inline coll::GroupOptions device_group(coll::BackendKind backend = coll::BackendKind::automatic) {
  coll::GroupOptions o;
  o.name = "g";
  o.memory = coll::Memory::cuda;
  o.backend = backend;
  o.staging_bytes = 1 << 20;  // the device-local path's smallest: large cases run in pieces
  o.timeout_ms = 30000;
  return o;
}

/// Case c on device buffers, in the group device_group() names.
inline CollCase on_device(CollCase c) {
  c.device = true;
  c.group = "g";
  return c;
}

/// What rank r should get for case c in a group of W.
inline std::vector<double> coll_expected(const CollCase& c, std::size_t W, std::size_t r) {
  auto reduce = [&](std::size_t i) {
    double acc = coll_input(0, i);
    for (std::size_t k = 1; k < W; ++k) {
      double v = coll_input(k, i);
      switch (static_cast<coll::Op>(c.reduce)) {
        case coll::Op::sum:
        case coll::Op::avg: acc += v; break;
        case coll::Op::max: acc = std::max(acc, v); break;
        case coll::Op::min: acc = std::min(acc, v); break;
      }
    }
    if (static_cast<coll::Op>(c.reduce) == coll::Op::avg) {
      acc /= static_cast<double>(W);
      auto d = static_cast<coll::DType>(c.dtype);
      if (d != coll::DType::f32 && d != coll::DType::f64 && d != coll::DType::bf16 && d != coll::DType::f16)
        acc = std::trunc(acc);
    }
    return acc;
  };
  std::vector<double> e;
  if (c.op == "allreduce")
    for (std::size_t i = 0; i < c.n; ++i) e.push_back(reduce(i));
  else if (c.op == "reduce_scatter")
    for (std::size_t i = 0; i < c.n; ++i) e.push_back(reduce(r * c.n + i));
  else if (c.op == "allgather")
    for (std::size_t k = 0; k < W; ++k)
      for (std::size_t i = 0; i < c.n; ++i) e.push_back(coll_input(k, i));
  else if (c.op == "broadcast")
    for (std::size_t i = 0; i < c.n; ++i) e.push_back(coll_input(c.root, i));
  else if (c.op == "sendrecv")
    for (std::size_t i = 0; i < c.n; ++i) e.push_back(coll_input(W == 1 ? r : (r + W - 1) % W, i));
  return e;
}

/// Runs case c on every member of `mesh` and checks each rank against the reference.
inline void check_coll_case(Mesh<CollMember>& mesh, const CollCase& c) {
  auto got = mesh.call(&CollMember::run, c).get(std::chrono::seconds(60));
  const std::size_t W = mesh.size();
  // Half types round each result to 8 (bf16) or 11 (f16) significant bits.
  const auto d = static_cast<coll::DType>(c.dtype);
  const double tolerance = d == coll::DType::bf16 ? 1.0 / 256 : d == coll::DType::f16 ? 1.0 / 2048 : 1e-6;
  for (std::size_t r = 0; r < W; ++r) {
    auto want = coll_expected(c, W, r);
    INFO(c.op << " dtype " << c.dtype << " n " << c.n << " op " << c.reduce << " heap " << c.heap << " rank " << r
              << " of " << W);
    REQUIRE(got[r].size() == want.size());
    std::size_t bad = want.size();
    for (std::size_t i = 0; i < want.size() && bad == want.size(); ++i)
      if (got[r][i] != Approx(want[i]).epsilon(tolerance)) bad = i;
    INFO("first wrong index " << bad);
    CHECK(bad == want.size());
  }
}

}  // namespace troupe::test
