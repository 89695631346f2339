#pragma once
// Mesh<T>: n actors of one class, addressed together (broadcast + gather) or by rank.
// A mesh may have named dimensions (MeshShape, e.g. dp = 2 x pp = 2 x tp = 2,
// row-major: the last varies fastest), sliced by dimension and coordinate
// (Monarch's mesh.slice(pp=i)) or cut into every line along one dimension
// (lines("tp"): every tensor-parallel group), each a Mesh of its own.
#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "runtime/actor_ref.hpp"
#include "runtime/when.hpp"

namespace troupe {

/// Named dimensions of a mesh, row-major (the last varies fastest). A mesh
/// without one is 1-D, named "rank".
class MeshShape {
 public:
  struct Dim {
    std::string name;
    std::size_t size = 0;
  };
  MeshShape() = default;
  /// UsageError for an empty or repeated name or a size of 0.
  MeshShape(std::initializer_list<Dim> dims) : MeshShape(std::vector<Dim>(dims)) {}
  explicit MeshShape(std::vector<Dim> dims) : dims_(std::move(dims)) {
    for (std::size_t i = 0; i < dims_.size(); ++i) {
      if (dims_[i].name.empty()) throw UsageError("mesh shape: a dimension without a name");
      if (dims_[i].size == 0) throw UsageError(fmt::format("mesh shape: dimension '{}' has size 0", dims_[i].name));
      for (std::size_t j = 0; j < i; ++j)
        if (dims_[j].name == dims_[i].name)
          throw UsageError(fmt::format("mesh shape: dimension '{}' appears twice", dims_[i].name));
    }
  }
  /// One dimension of n ranks.
  static MeshShape line(std::size_t n, std::string name = "rank") { return MeshShape({Dim{std::move(name), n}}); }

  const std::vector<Dim>& dims() const noexcept { return dims_; }
  std::size_t ndim() const noexcept { return dims_.size(); }
  /// The number of ranks (1 for no dimension).
  std::size_t size() const noexcept {
    std::size_t n = 1;
    for (auto& d : dims_) n *= d.size;
    return n;
  }
  bool has(std::string_view name) const noexcept {
    for (auto& d : dims_)
      if (d.name == name) return true;
    return false;
  }
  /// The position of dimension `name`; UsageError naming the dimensions there are.
  std::size_t axis(std::string_view name) const {
    for (std::size_t i = 0; i < dims_.size(); ++i)
      if (dims_[i].name == name) return i;
    throw UsageError(fmt::format("mesh {} has no dimension '{}'", str(), name));
  }
  std::size_t size(std::string_view name) const { return dims_[axis(name)].size; }
  /// Ranks between neighbours along `name`.
  std::size_t stride(std::string_view name) const {
    std::size_t s = 1;
    for (std::size_t i = dims_.size(); i-- > axis(name) + 1;) s *= dims_[i].size;
    return s;
  }
  /// Rank r's coordinate along `name`.
  std::size_t coord(std::size_t rank, std::string_view name) const {
    check_rank(rank);
    return rank / stride(name) % size(name);
  }
  /// Rank r's coordinates, one per dimension.
  std::vector<std::size_t> coords(std::size_t rank) const {
    check_rank(rank);
    std::vector<std::size_t> c(dims_.size());
    for (std::size_t i = dims_.size(); i-- > 0;) {
      c[i] = rank % dims_[i].size;
      rank /= dims_[i].size;
    }
    return c;
  }
  /// The rank at `coords` (one per dimension).
  std::size_t rank_of(const std::vector<std::size_t>& coords) const {
    if (coords.size() != dims_.size())
      throw UsageError(fmt::format("mesh {}: {} coordinates for {} dimensions", str(), coords.size(), dims_.size()));
    std::size_t r = 0;
    for (std::size_t i = 0; i < dims_.size(); ++i) {
      if (coords[i] >= dims_[i].size)
        throw UsageError(fmt::format("mesh {}: {} = {} is out of range (0-{})", str(), dims_[i].name, coords[i],
                                     dims_[i].size - 1));
      r = r * dims_[i].size + coords[i];
    }
    return r;
  }
  /// The shape without dimension `name`.
  MeshShape without(std::string_view name) const {
    const std::size_t a = axis(name);
    std::vector<Dim> rest;
    for (std::size_t i = 0; i < dims_.size(); ++i)
      if (i != a) rest.push_back(dims_[i]);
    return MeshShape(std::move(rest));
  }
  /// "dp=2 x pp=2 x tp=2" ("[]" without dimensions).
  std::string str() const {
    if (dims_.empty()) return "[]";
    std::string s;
    for (auto& d : dims_) s += fmt::format("{}{}={}", s.empty() ? "" : " x ", d.name, d.size);
    return s;
  }
  bool operator==(const MeshShape& o) const {
    if (dims_.size() != o.dims_.size()) return false;
    for (std::size_t i = 0; i < dims_.size(); ++i)
      if (dims_[i].name != o.dims_[i].name || dims_[i].size != o.dims_[i].size) return false;
    return true;
  }

 private:
  void check_rank(std::size_t rank) const {
    if (rank >= size()) throw UsageError(fmt::format("mesh {}: rank {} is out of range (size {})", str(), rank, size()));
  }
  std::vector<Dim> dims_;
};

template <class T>
class Mesh {
 public:
  Mesh() = default;
  explicit Mesh(std::vector<ActorRef<T>> members) : members_(std::move(members)), shape_(MeshShape::line(members_.size())) {}
  /// Members in row-major order of `shape`; UsageError unless the sizes agree.
  Mesh(std::vector<ActorRef<T>> members, MeshShape shape) : members_(std::move(members)), shape_(std::move(shape)) {
    if (shape_.size() != members_.size())
      throw UsageError(fmt::format("mesh shape {} holds {} members, not {}", shape_.str(), shape_.size(), members_.size()));
  }

  /// Its dimensions (a 1-D mesh: one, named "rank").
  const MeshShape& shape() const noexcept { return shape_; }
  /// The same members with named dimensions (row-major), e.g.
  /// mesh.reshape({{"dp", 2}, {"pp", 2}, {"tp", 2}}); UsageError unless the
  /// product is the mesh's size.
  Mesh reshape(MeshShape shape) const { return Mesh(members_, std::move(shape)); }
  /// The members whose coordinate along `dim` is `coord`, as a mesh without
  /// that dimension (mesh.slice("pp", 1): stage 1 of every replica).
  Mesh slice(std::string_view dim, std::size_t coord) const {
    const std::size_t n = shape_.size(dim);
    if (coord >= n)
      throw UsageError(fmt::format("mesh {}: {} = {} is out of range (0-{})", shape_.str(), dim, coord, n - 1));
    std::vector<ActorRef<T>> out;
    for (std::size_t r = 0; r < members_.size(); ++r)
      if (shape_.coord(r, dim) == coord) out.push_back(members_[r]);
    return Mesh(std::move(out), shape_.without(dim));
  }
  /// Several coordinates fixed at once: mesh.slice({{"dp", 0}, {"pp", 1}}).
  Mesh slice(std::initializer_list<std::pair<std::string_view, std::size_t>> at) const {
    Mesh m = *this;
    for (auto& [dim, coord] : at) m = m.slice(dim, coord);
    return m;
  }
  /// Every line of members along `dim` (the others fixed), in row-major order
  /// of the other dimensions: lines("tp") is every tensor-parallel group,
  /// lines("dp") every data-parallel group of a (stage, tp rank). Each is a
  /// 1-D mesh named `dim`.
  std::vector<Mesh> lines(std::string_view dim) const {
    const std::size_t n = shape_.size(dim), stride = shape_.stride(dim);
    std::vector<Mesh> out;
    for (std::size_t r = 0; r < members_.size(); ++r) {
      if (shape_.coord(r, dim) != 0) continue;  // each line once, from its first member
      std::vector<ActorRef<T>> line;
      for (std::size_t k = 0; k < n; ++k) line.push_back(members_[r + k * stride]);
      out.push_back(Mesh(std::move(line), MeshShape::line(n, std::string(dim))));
    }
    return out;
  }

  std::size_t size() const noexcept { return members_.size(); }
  bool empty() const noexcept { return members_.empty(); }

  /// The member at `rank` (an index into this mesh or slice).
  const ActorRef<T>& operator[](std::size_t rank) const {
    if (rank >= members_.size())
      throw UsageError(fmt::format("mesh rank {} out of range (size {})", rank, members_.size()));
    return members_[rank];
  }
  const ActorRef<T>& at(std::size_t rank) const { return (*this)[rank]; }
  const std::vector<ActorRef<T>>& members() const noexcept { return members_; }

  /// Broadcast: calls `method` on every member with (copies of) `args`;
  /// the Ref holds the results in rank order (Ref<void> for void methods) and
  /// fails with the first error.
  template <class M, class... A>
  auto call(M method, const A&... args) const {
    using R = detail::call_result_t<M>;
    std::vector<Ref<R>> refs;
    refs.reserve(members_.size());
    for (auto& m : members_) refs.push_back(m.call(method, args...));
    return when_all(std::move(refs));
  }
  /// Calls one member.
  template <class M, class... A>
  auto call_one(std::size_t rank, M method, A&&... args) const {
    return (*this)[rank].call(method, std::forward<A>(args)...);
  }

  /// Members [begin, end) as a mesh of their own (ranks inside the actors do
  /// not change: they are their ranks in the mesh they were spawned in).
  /// The result is 1-D.
  Mesh slice(std::size_t begin, std::size_t end) const {
    if (begin > end || end > members_.size())
      throw UsageError(fmt::format("mesh slice [{}, {}) out of range (size {})", begin, end, members_.size()));
    return Mesh(std::vector<ActorRef<T>>(members_.begin() + begin, members_.begin() + end));
  }

  /// Stops every member; the Ref completes when all have stopped.
  Ref<void> stop() const {
    std::vector<Ref<void>> refs;
    for (auto& m : members_) refs.push_back(m.stop());
    return when_all(std::move(refs));
  }
  void kill() const {
    for (auto& m : members_) m.kill();
  }

 private:
  std::vector<ActorRef<T>> members_;
  MeshShape shape_;
};

}  // namespace troupe
