#pragma once
// Mesh<T>: n actors of one class, addressed together (broadcast + gather) or by rank.
#include <cstddef>
#include <vector>

#include <fmt/format.h>

#include "runtime/actor_ref.hpp"
#include "runtime/when.hpp"

namespace troupe {

template <class T>
class Mesh {
 public:
  Mesh() = default;
  explicit Mesh(std::vector<ActorRef<T>> members) : members_(std::move(members)) {}

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
};

}  // namespace troupe
