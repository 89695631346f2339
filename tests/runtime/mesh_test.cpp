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

TEST_CASE("a mesh with named dimensions: coordinates, slices by dimension and every line along one", "[mesh]") {
  Runtime rt({.threads = 2});
  auto flat = rt.spawn_mesh<Replica>(8, 1);
  auto mesh = flat.reshape({{"dp", 2}, {"pp", 2}, {"tp", 2}});
  const auto& s = mesh.shape();
  CHECK(s.str() == "dp=2 x pp=2 x tp=2");
  CHECK(flat.shape().str() == "rank=8");
  // Row-major: tp varies fastest. Rank 6 is dp 1, pp 1, tp 0.
  CHECK(s.coords(6) == std::vector<std::size_t>{1, 1, 0});
  CHECK(s.coord(6, "pp") == 1);
  CHECK(s.rank_of({1, 0, 1}) == 5);
  for (std::size_t r = 0; r < 8; ++r) CHECK(s.rank_of(s.coords(r)) == r);
  CHECK(s.stride("dp") == 4);
  CHECK(s.stride("tp") == 1);

  // Stage 1 of every replica: ranks 2, 3, 6, 7, as a dp x tp mesh.
  auto stage1 = mesh.slice("pp", 1);
  CHECK(stage1.shape().str() == "dp=2 x tp=2");
  CHECK(stage1.call(&Replica::rank_times_scale).get() == std::vector<int>{2, 3, 6, 7});
  CHECK(mesh.slice({{"dp", 1}, {"pp", 0}}).call(&Replica::rank_times_scale).get() == std::vector<int>{4, 5});

  // Every tp group and every dp group, without a rank list written by hand.
  auto tp = mesh.lines("tp");
  REQUIRE(tp.size() == 4);
  std::vector<std::vector<int>> got;
  for (auto& line : tp) got.push_back(line.call(&Replica::rank_times_scale).get());
  CHECK(got == std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4, 5}, {6, 7}});
  got.clear();
  for (auto& line : mesh.lines("dp")) got.push_back(line.call(&Replica::rank_times_scale).get());
  CHECK(got == std::vector<std::vector<int>>{{0, 4}, {1, 5}, {2, 6}, {3, 7}});
  CHECK(mesh.lines("pp").front().shape().str() == "pp=2");

  // Mistakes name what is wrong.
  CHECK_THROWS_WITH(flat.reshape({{"dp", 3}, {"tp", 2}}), Catch::Contains("dp=3 x tp=2 holds 6 members, not 8"));
  CHECK_THROWS_WITH(mesh.slice("ep", 0), Catch::Contains("no dimension 'ep'") && Catch::Contains("dp=2 x pp=2 x tp=2"));
  CHECK_THROWS_WITH(mesh.slice("pp", 2), Catch::Contains("pp = 2 is out of range (0-1)"));
  CHECK_THROWS_WITH(MeshShape({{"dp", 2}, {"dp", 4}}), Catch::Contains("'dp' appears twice"));
  CHECK_THROWS_WITH(MeshShape({{"tp", 0}}), Catch::Contains("'tp' has size 0"));
  CHECK_THROWS_WITH(s.rank_of({0, 2, 0}), Catch::Contains("pp = 2 is out of range"));
  CHECK_THROWS_WITH(s.coords(8), Catch::Contains("rank 8 is out of range"));
}
