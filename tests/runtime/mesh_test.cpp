#include <catch2/catch.hpp>

#include "runtime/troupe.hpp"

using namespace troupe;

namespace {
class Replica {
 public:
  explicit Replica(int scale) : scale_(scale) {}
  int rank_times_scale() const { return static_cast<int>(self().rank()) * scale_; }
  std::size_t size() const { return self().mesh_size(); }
  std::string name() const { return self().name(); }
  void set(int v) { v_ = v; }
  int get() const { return v_; }
  int fail_on_rank(int bad) const {
    if (static_cast<int>(self().rank()) == bad) throw std::runtime_error("rank " + std::to_string(bad) + " refused");
    return 0;
  }

 private:
  int scale_;
  int v_ = 0;
};
}  // namespace

TEST_CASE("a mesh broadcasts and gathers in rank order", "[mesh]") {
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<Replica>(4, 10);
  REQUIRE(mesh.size() == 4);
  CHECK(mesh.call(&Replica::rank_times_scale).get() == std::vector<int>{0, 10, 20, 30});
  CHECK(mesh.call(&Replica::size).get() == std::vector<std::size_t>{4, 4, 4, 4});
  mesh.call(&Replica::set, 5).get();  // void methods give Ref<void>
  CHECK(mesh.call(&Replica::get).get() == std::vector<int>{5, 5, 5, 5});
}

TEST_CASE("call one rank, slice, and name members", "[mesh]") {
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<Replica>(5, 1, Options{}.name("rep"));
  mesh.call_one(2, &Replica::set, 42).get();
  CHECK(mesh.call(&Replica::get).get() == std::vector<int>{0, 0, 42, 0, 0});
  auto mid = mesh.slice(1, 4);
  REQUIRE(mid.size() == 3);
  CHECK(mid.call(&Replica::rank_times_scale).get() == std::vector<int>{1, 2, 3});  // ranks stay global
  CHECK(mid[0].call(&Replica::name).get() == "rep/1");
  CHECK(rt.get_actor<Replica>("rep/4").call(&Replica::rank_times_scale).get() == 4);
  CHECK_THROWS_AS(mesh[5], UsageError);
  CHECK_THROWS_AS(mesh.slice(3, 7), UsageError);
  CHECK_THROWS_AS(rt.spawn_mesh<Replica>(0, 1), UsageError);
}

TEST_CASE("a mesh call fails with a member's error", "[mesh]") {
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<Replica>(3, 1);
  CHECK_THROWS_WITH(mesh.call(&Replica::fail_on_rank, 1).get(), "rank 1 refused");
  mesh.stop().get();
  CHECK_THROWS_AS(mesh.call(&Replica::get).get(), ActorDied);
}

TEST_CASE("a mesh spawn with a taken name spawns nothing", "[mesh]") {
  Runtime rt({.threads = 2});
  auto lone = rt.spawn<Replica>(1, Options{}.name("w/2"));
  CHECK_THROWS_AS(rt.spawn_mesh<Replica>(4, 1, Options{}.name("w")), DuplicateName);
  CHECK(rt.live_actors() >= 1);
  // The two members spawned before the clash were killed again.
  CHECK_FALSE(rt.find_actor<Replica>("w/0").has_value());
  CHECK(lone.alive());
}
