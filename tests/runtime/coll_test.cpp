// Collective groups of in-process actors (shared-memory backend, ranks as
// threads of one process): every operation, 1 to 8 ranks, odd sizes, every
// dtype, against a CPU reference; disagreeing ranks, bad roots, a destroyed
// group and a killed member fail every rank instead of hanging.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <thread>

#include "tests/support/coll_member.hpp"
#include "tests/support/enum_words.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using troupe::test::CollCase;
using troupe::test::CollMember;

namespace {

coll::GroupOptions small_staging(const std::string& name = "t",
                                 coll::BackendKind backend = coll::BackendKind::automatic) {
  coll::GroupOptions o;
  o.name = name;
  o.backend = backend;
  o.staging_bytes = 64 * 1024;  // so that large cases run in several pieces
  o.p2p_bytes = 16 * 1024;
  o.heap_bytes = 64ull << 20;
  o.timeout_ms = 20000;
  return o;
}

// Issues `count` allreduces back to back, then waits for them all (get() or
// co_await): rank r's op k holds (k + 1) * (r + 1) + i % 3 at index i.
class Burst {
 public:
  Task<std::vector<float>> run(std::size_t n, int count, int delay_ms, bool block) {
    auto g = coll::group("t");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    std::vector<std::vector<float>> bufs(static_cast<std::size_t>(count), std::vector<float>(n));
    std::vector<Ref<void>> refs;
    for (int k = 0; k < count; ++k) {
      auto& b = bufs[static_cast<std::size_t>(k)];
      for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<float>((k + 1) * (g->rank() + 1) + i % 3);
      refs.push_back(g->allreduce(std::span<float>(b)));
    }
    for (auto& r : refs) {
      if (block)
        r.get();
      else
        co_await r;
    }
    std::vector<float> out;
    for (auto& b : bufs) out.insert(out.end(), b.begin(), b.end());
    co_return out;
  }
};

// A member of an N-D mesh: sums its mesh rank over the groups it is in.
class MeshMember {
 public:
  Task<std::vector<float>> sums(std::vector<std::string> groups) {
    std::vector<float> out;
    for (auto& name : groups) {
      std::vector<float> v{static_cast<float>(self().rank())};
      co_await coll::group(name)->allreduce(std::span<float>(v));
      out.push_back(v[0]);
    }
    co_return out;
  }
};
TROUPE_ACTOR(MeshMember, sums);

}  // namespace

TEST_CASE("create_groups makes a group per line of an N-D mesh: every tp group, every dp group", "[coll]") {
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<MeshMember>(8).reshape({{"dp", 2}, {"pp", 2}, {"tp", 2}});
  auto tp = coll::create_groups(rt, mesh, "tp", small_staging("tp"));
  auto dp = coll::create_groups(rt, mesh, "dp", small_staging("dp"));
  CHECK(tp.size() == 4);
  CHECK(dp.size() == 4);
  for (auto& g : tp) CHECK(g.world == 2);
  auto got = mesh.call(&MeshMember::sums, std::vector<std::string>{"tp", "dp"}).get(std::chrono::seconds(60));
  const auto& s = mesh.shape();
  for (std::size_t r = 0; r < 8; ++r) {
    auto c = s.coords(r);
    // Its tp group: the ranks that differ from it only in tp; likewise dp.
    const auto tp_sum = static_cast<float>(s.rank_of({c[0], c[1], 0}) + s.rank_of({c[0], c[1], 1}));
    const auto dp_sum = static_cast<float>(s.rank_of({0, c[1], c[2]}) + s.rank_of({1, c[1], c[2]}));
    CHECK(got[r] == std::vector<float>{tp_sum, dp_sum});
  }
  CHECK_THROWS_WITH(coll::create_groups(rt, mesh, "ep", small_staging("ep")), Catch::Contains("no dimension 'ep'"));
}

TEST_CASE("every collective matches the CPU reference for 1 to 8 ranks", "[coll]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  for (std::size_t W : {1u, 2u, 3u, 4u, 8u}) {
    auto mesh = rt.spawn_mesh<CollMember>(W);
    coll::create_group(rt, mesh, small_staging("t", backend));
    const std::vector<std::size_t> sizes = W <= 4 ? std::vector<std::size_t>{0, 1, 2, 7, 13, 1031, 40009}
                                                   : std::vector<std::size_t>{0, 1, 13, 40009};
    for (std::size_t n : sizes) {
      for (bool heap : {false, true}) {
        for (int op = 0; op < 4; ++op) troupe::test::check_coll_case(mesh, {"allreduce", 0, n, op, 0, heap});
        for (int dt = 1; dt < 5; ++dt) troupe::test::check_coll_case(mesh, {"allreduce", dt, n, 0, 0, heap});
        troupe::test::check_coll_case(mesh, {"allreduce", 3, n, 1, 0, heap});  // int64 avg
        for (int half : {5, 6})  // bf16, f16: sum, avg, max
          for (int op : {0, 1, 2}) troupe::test::check_coll_case(mesh, {"allreduce", half, n, op, 0, heap});
        troupe::test::check_coll_case(mesh, {"broadcast", 0, n, 0, static_cast<std::uint32_t>(W - 1), heap});
      }
      troupe::test::check_coll_case(mesh, {"reduce_scatter", 0, n, 0});
      troupe::test::check_coll_case(mesh, {"reduce_scatter", 2, n, 2});
      troupe::test::check_coll_case(mesh, {"allgather", 1, n, 0});
      troupe::test::check_coll_case(mesh, {"allgather", 4, n, 0});
      troupe::test::check_coll_case(mesh, {"reduce_scatter", 5, n, 0});
      troupe::test::check_coll_case(mesh, {"allgather", 6, n, 0});
      troupe::test::check_coll_case(mesh, {"sendrecv", 5, n, 0});
      troupe::test::check_coll_case(mesh, {"sendrecv", 0, n, 0});
      troupe::test::check_coll_case(mesh, {"barrier", 0, 0, 0});
    }
    for (auto& m : mesh.members()) m.stop().get(10s);
  }
}

TEST_CASE("allreduce where some ranks pass group buffers and others their own", "[coll]") {
  // The in-place path needs every rank's buffer in the shared heap; a group
  // that mixes them must agree on the staging path (one rank already staged
  // its first piece, another has not).
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(3);
  coll::create_group(rt, mesh, small_staging("t", coll::BackendKind::shm));
  for (std::size_t n : {13u, 20000u, 40009u})
    for (int op : {0, 1, 2}) {
      CollCase c{"allreduce", 0, n, op, 0, true};
      c.own_rank = 1;
      troupe::test::check_coll_case(mesh, c);
      c.own_rank = 0;
      troupe::test::check_coll_case(mesh, c);
    }
}

TEST_CASE("operations complete in issue order whoever runs them: caller, waiter or the group's thread", "[coll]") {
  // Small operations start on the caller's thread and, when a peer is late,
  // finish on the group's thread; a caller blocked in get() runs queued ones
  // itself. Each mix must give every operation its own, right result.
  Runtime rt({.threads = 3});
  auto mesh = rt.spawn_mesh<Burst>(2);
  coll::create_group(rt, mesh, small_staging("t", coll::BackendKind::shm));
  for (std::size_t n : {1u, 3000u, 70000u})
    for (bool block : {false, true})
      for (int late : {0, 30}) {
        INFO("n " << n << " block " << block << " late rank waits " << late << " ms");
        const int count = 4;
        auto a = mesh[0].call(&Burst::run, n, count, 0, block);
        auto b = mesh[1].call(&Burst::run, n, count, late, block);
        for (auto* r : {&a, &b}) {
          auto got = r->get(20s);
          REQUIRE(got.size() == n * count);
          for (int k = 0; k < count; ++k)
            for (std::size_t i = 0; i < n; ++i)
              REQUIRE(got[k * n + i] == static_cast<float>(3 * (k + 1) + 2 * (i % 3)));
        }
      }
}

TEST_CASE("init_group forms a group from inside the actors, as create_group does from the driver", "[coll]") {
  Runtime rt({.threads = 4});
  auto mesh = rt.spawn_mesh<CollMember>(3, Options{}.name("m"));
  auto o = small_staging("inner", coll::BackendKind::automatic);
  // Ranks need not follow the mesh: rank r is mesh member 2 - r.
  std::vector<Ref<std::string>> joined;
  for (std::uint32_t i = 0; i < 3; ++i) joined.push_back(mesh[i].call(&CollMember::init, 3u, 2 - i, o));
  for (std::uint32_t i = 0; i < 3; ++i) CHECK(joined[i].get(20s) == fmt::format("{}/3/shm", 2 - i));
  CollCase c{"allreduce", 0, 1031, 0};
  c.group = "inner";
  auto got = mesh.call(&CollMember::run, c).get(20s);
  for (std::uint32_t i = 0; i < 3; ++i) CHECK(got[i] == troupe::test::coll_expected(c, 3, 2 - i));

  // Called again, it forms a new group under the name (a rebuild).
  joined.clear();
  for (std::uint32_t i = 0; i < 3; ++i) joined.push_back(mesh[i].call(&CollMember::init, 3u, i, o));
  for (std::uint32_t i = 0; i < 3; ++i) CHECK(joined[i].get(20s) == fmt::format("{}/3/shm", i));
  c.reduce = 2;  // max
  got = mesh.call(&CollMember::run, c).get(20s);
  for (std::uint32_t i = 0; i < 3; ++i) CHECK(got[i] == troupe::test::coll_expected(c, 3, i));

  // A member that dies: the others' operations fail naming it (the driver monitors init_group members too).
  auto a = mesh[0].call(&CollMember::run, CollCase{"allreduce", 0, 1000, 0, 0, false, "inner"});
  auto b = mesh[1].call(&CollMember::run, CollCase{"allreduce", 0, 1000, 0, 0, false, "inner"});
  std::this_thread::sleep_for(50ms);
  mesh[2].kill();
  CHECK_THROWS_WITH(a.get(10s), Catch::Contains("rank 2") && Catch::Contains("died"));
  CHECK_THROWS_WITH(b.get(10s), Catch::Contains("rank 2") && Catch::Contains("died"));
}

TEST_CASE("init_group: members that disagree, a rank taken twice, a rank that never comes", "[coll]") {
  Runtime rt({.threads = 4});
  auto mesh = rt.spawn_mesh<CollMember>(3);
  auto o = small_staging("g", coll::BackendKind::automatic);
  // World sizes differ: every member asking fails, naming both.
  {
    auto a = mesh[0].call(&CollMember::init, 2u, 0u, o);
    auto b = mesh[1].call(&CollMember::init, 3u, 1u, o);
    const auto both = Catch::Contains("members disagree: rank 0 asks for world 2, rank 1 for world 3");
    CHECK_THROWS_WITH(a.get(10s), both);
    CHECK_THROWS_WITH(b.get(10s), both);
  }
  // So do other options.
  {
    auto other = o;
    other.staging_bytes *= 2;
    auto a = mesh[0].call(&CollMember::init, 2u, 0u, o);
    auto b = mesh[1].call(&CollMember::init, 2u, 1u, other);
    const auto both = Catch::Contains(fmt::format("rank 0 asks for staging_bytes {}, rank 1 for staging_bytes {}",
                                                  o.staging_bytes, other.staging_bytes));
    CHECK_THROWS_WITH(a.get(10s), both);
    CHECK_THROWS_WITH(b.get(10s), both);
  }
  // Two actors ask for rank 0: whichever comes second is refused; the round
  // goes on and forms with the first.
  {
    auto a = mesh[0].call(&CollMember::init, 2u, 0u, o);
    auto dup = mesh[2].call(&CollMember::init, 2u, 0u, o);
    std::this_thread::sleep_for(50ms);
    auto b = mesh[1].call(&CollMember::init, 2u, 1u, o);
    CHECK(b.get(10s) == "1/2/shm");
    int formed = 0, refused = 0;
    for (auto* r : {&a, &dup}) {
      try {
        const auto got = r->get(10s);
        CHECK(got == "0/2/shm");
        ++formed;
      } catch (const coll::CollectiveError& e) {
        CHECK_THAT(e.what(), Catch::Contains("rank 0 is taken"));
        ++refused;
      }
    }
    CHECK(formed == 1);
    CHECK(refused == 1);
  }
  // Rank 2 of 3 never asks: the others fail once the timeout passes, naming it.
  {
    auto quick = o;
    quick.timeout_ms = 300;
    auto a = mesh[0].call(&CollMember::init, 3u, 0u, quick);
    auto b = mesh[1].call(&CollMember::init, 3u, 1u, quick);
    CHECK_THROWS_WITH(a.get(10s), Catch::Contains("rank 2 of 3 did not join within 300 ms"));
    CHECK_THROWS_WITH(b.get(10s), Catch::Contains("rank 2 of 3 did not join"));
  }
  // Bad arguments are refused at once.
  auto bad = mesh[0].call(&CollMember::init, 2u, 2u, o);
  CHECK_THROWS_WITH(bad.get(10s), Catch::Contains("rank 2 of a group of 2"));
}

TEST_CASE("ranks that disagree fail every rank with the same message", "[coll]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(3);
  coll::create_group(rt, mesh, small_staging("t", backend));
  // Rank 1 asks for a different size.
  std::vector<Ref<std::vector<double>>> refs;
  for (std::size_t r = 0; r < 3; ++r)
    refs.push_back(mesh[r].call(&CollMember::run, CollCase{"allreduce", 0, r == 1 ? 9u : 10u, 0}));
  for (auto& ref : refs)
    CHECK_THROWS_WITH(ref.get(20s), Catch::Contains("ranks disagree") && Catch::Contains("calls allreduce float32 x 9") &&
                                        Catch::Contains("calls allreduce float32 x 10"));
  // The failure is sticky: later operations fail the same way.
  CHECK_THROWS_WITH(mesh[0].call(&CollMember::run, CollCase{"barrier", 0, 0, 0}).get(20s),
                    Catch::Contains("ranks disagree"));
}

TEST_CASE("a broadcast root out of range is an error on every rank", "[coll]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(2);
  coll::create_group(rt, mesh, small_staging("t", backend));
  // Each rank's own result (mesh.call's Ref fails at the first error, and
  // ending the test with the other rank's call in flight would tear the
  // runtime down under it).
  std::vector<Ref<std::vector<double>>> refs;
  for (std::size_t r = 0; r < 2; ++r) refs.push_back(mesh[r].call(&CollMember::run, CollCase{"broadcast", 0, 4, 0, 5}));
  for (auto& ref : refs) CHECK_THROWS_WITH(ref.get(20s), Catch::Contains("root 5") && Catch::Contains("2 ranks"));
}

TEST_CASE("a member killed mid-allreduce fails the others at once, naming it; the group can be rebuilt", "[coll]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<CollMember>(3, Options{}.name("m"));
  coll::create_group(rt, mesh, small_staging("t", backend));
  // Ranks 0 and 1 enter an allreduce; rank 2 never does and is killed.
  auto a = mesh[0].call(&CollMember::run, CollCase{"allreduce", 0, 1000, 0});
  auto b = mesh[1].call(&CollMember::run, CollCase{"allreduce", 0, 1000, 0});
  std::this_thread::sleep_for(50ms);
  mesh[2].kill();
  CHECK_THROWS_WITH(a.get(10s), Catch::Contains("rank 2") && Catch::Contains("died"));
  CHECK_THROWS_WITH(b.get(10s), Catch::Contains("rank 2") && Catch::Contains("died"));
  // Rebuilt with the survivors and a new member under the same name.
  auto fresh = rt.spawn<CollMember>();
  std::vector<ActorRef<CollMember>> members{mesh[0], mesh[1], fresh};
  coll::create_group(rt, members, small_staging("t", backend));
  CollCase c{"allreduce", 0, 100, 0};
  std::vector<Ref<std::vector<double>>> refs;
  for (auto& m : members) refs.push_back(m.call(&CollMember::run, c));
  // Ranks follow the list; mesh ranks do not matter.
  auto want = troupe::test::coll_expected(c, 3, 0);
  for (auto& r : refs) CHECK(r.get(20s) == want);
}

TEST_CASE("create_group refuses bad input", "[coll]") {
  Runtime rt({.threads = 1});
  std::vector<ActorRef<CollMember>> none;
  CHECK_THROWS_AS(coll::create_group(rt, none), UsageError);
  auto m = rt.spawn<CollMember>();
  std::vector<ActorRef<CollMember>> one{m};
  coll::GroupOptions o;
  o.backend = coll::BackendKind::nccl;  // a device backend for host buffers
  CHECK_THROWS_WITH(coll::create_group(rt, one, o),
                    Catch::Contains("backend 'nccl' is not available (shm: ranks on one host; tcp: any)"));
  // An actor outside any group asking for one gets a clear error.
  CHECK_THROWS_WITH(m.call(&CollMember::run, CollCase{"barrier", 0, 0, 0, 0, false, "nope"}).get(10s),
                    Catch::Contains("not a member of a collective group 'nope'"));
}

TEST_CASE("group options name their backend and memory by words", "[coll]") {
  troupe::test::check_enum_words<coll::BackendKind>("backend", "auto, shm, tcp, nccl or cuda_local");
  troupe::test::check_enum_words<coll::Memory>("memory", "host or cuda");
  const coll::GroupOptions o;
  CHECK(o.backend == coll::BackendKind::automatic);
  CHECK(o.memory == coll::Memory::host);
}

TEST_CASE("a group made of a dead actor names why it died", "[coll]") {
  struct Broken {
    Broken() { throw std::runtime_error("config file missing"); }
    int ping() { return 1; }
  };
  Runtime rt({.threads = 2});
  auto b = rt.spawn<Broken>(Options{}.name("broken"));
  CHECK_THROWS_AS(b.call(&Broken::ping).get(2s), ActorDied);
  CHECK_THROWS_WITH(coll::create_group(rt, std::vector{b}, {.name = "g"}),
                    Catch::Contains("create_group: member") && Catch::Contains("config file missing"));
}
