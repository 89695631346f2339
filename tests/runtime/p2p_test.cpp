// Point-to-point transfers on host groups (shared memory and TCP, ranks as
// actors of one process), in the transfer model the pipeline schedules are
// checked against: a send never waits for unrelated receives, each (sender,
// receiver, tag) is one ordered channel, batches complete together. Mismatched
// sizes and receives nobody sends fail naming the ranks, never hang.
#include <catch2/catch.hpp>

#include <numeric>

#include "runtime/coll/create.hpp"
#include "runtime/coll/group.hpp"
#include "runtime/troupe.hpp"
#include "runtime/when.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

coll::GroupOptions opts(coll::BackendKind backend, std::uint32_t timeout_ms = 20000) {
  coll::GroupOptions o;
  o.name = "pp";
  o.backend = backend;
  o.p2p_bytes = 64 * 1024;  // small slots: messages go in many pieces
  o.heap_bytes = 1 << 20;
  o.timeout_ms = timeout_ms;
  return o;
}

std::vector<float> pattern(std::uint32_t from, int k, std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<float>(from * 1000003u + static_cast<std::uint64_t>(k) * 7919u + i % 9973);
  return v;
}

class P2PMember {
 public:
  /// Both neighbours issue all their sends first, then their receives, and
  /// only then wait: `rounds` messages of n floats each way (ranks 0 and 1).
  Task<bool> send_then_recv(std::size_t n, int rounds) {
    auto g = coll::group("pp");
    const std::uint32_t peer = 1 - g->rank();
    std::vector<std::vector<float>> out, in(static_cast<std::size_t>(rounds), std::vector<float>(n));
    std::vector<Ref<void>> refs;
    for (int k = 0; k < rounds; ++k) out.push_back(pattern(g->rank(), k, n));
    for (int k = 0; k < rounds; ++k) refs.push_back(g->send(std::span<const float>(out[static_cast<std::size_t>(k)]), peer));
    for (int k = 0; k < rounds; ++k) refs.push_back(g->recv(std::span<float>(in[static_cast<std::size_t>(k)]), peer));
    co_await when_all(std::move(refs));
    for (int k = 0; k < rounds; ++k)
      if (in[static_cast<std::size_t>(k)] != pattern(peer, k, n)) co_return false;
    co_return true;
  }
  /// Rank 0 sends A on tag 0, then B on tag 1; rank 1 waits for B before it
  /// asks for A. Tags are separate channels, so this completes.
  Task<bool> tags_out_of_order(std::size_t n) {
    auto g = coll::group("pp");
    if (g->rank() == 0) {
      auto a = pattern(0, 1, n), b = pattern(0, 2, n);
      auto ra = g->send(std::span<const float>(a), 1, 0);
      auto rb = g->send(std::span<const float>(b), 1, 1);
      co_await ra;
      co_await rb;
      co_return true;
    }
    std::vector<float> a(n), b(n);
    co_await g->recv(std::span<float>(b), 0, 1);
    co_await g->recv(std::span<float>(a), 0, 0);
    co_return a == pattern(0, 1, n) && b == pattern(0, 2, n);
  }
  /// A pipeline's steady state: rank r receives activations from r-1 (tag 0),
  /// sends them on to r+1, receives gradients from r+1 (tag 1) and sends them
  /// back, each neighbour exchange one batch (send ahead, receive back).
  Task<bool> pipeline(std::size_t n, int mbs) {
    auto g = coll::group("pp");
    const auto r = g->rank(), W = g->size();
    std::vector<std::vector<float>> act(static_cast<std::size_t>(mbs), std::vector<float>(n)),
        grad(static_cast<std::size_t>(mbs), std::vector<float>(n));
    std::vector<Ref<void>> pending;
    for (int m = 0; m < mbs; ++m) {
      auto& a = act[static_cast<std::size_t>(m)];
      if (r == 0)
        a = pattern(0, m, n);
      else
        co_await g->recv(std::span<float>(a), r - 1, 0);
      if (a != pattern(0, m, n)) co_return false;
      if (r + 1 < W) pending.push_back(g->send(std::span<const float>(a), r + 1, 0));
    }
    for (int m = 0; m < mbs; ++m) {
      auto& d = grad[static_cast<std::size_t>(m)];
      if (r + 1 == W)
        d = pattern(W - 1, m, n);
      else
        co_await g->recv(std::span<float>(d), r + 1, 1);
      if (d != pattern(W - 1, m, n)) co_return false;
      if (r > 0) pending.push_back(g->send(std::span<const float>(d), r - 1, 1));
    }
    co_await when_all(std::move(pending));
    co_return true;
  }
  /// One batch per rank: send to r+1 and receive from r-1 (a ring), k times.
  Task<bool> ring_batches(std::size_t n, int k) {
    auto g = coll::group("pp");
    const auto r = g->rank(), W = g->size();
    for (int i = 0; i < k; ++i) {
      auto mine = pattern(r, i, n);
      std::vector<float> got(n);
      co_await g->batch(coll::Group::Batch().send(std::span<const float>(mine), (r + 1) % W).recv(std::span<float>(got), (r + W - 1) % W));
      if (got != pattern((r + W - 1) % W, i, n)) co_return false;
    }
    co_return true;
  }
  /// Many one-float messages on one channel, each posted alone and none
  /// waited for until all are posted: receive k holds send k. (A receive
  /// posted while the group's thread was taking up the one before it once
  /// moved inline and took its message.)
  Task<int> stream_in_order(int count) {
    auto g = coll::group("pp");
    std::vector<float> v(static_cast<std::size_t>(count));
    std::vector<Ref<void>> refs;
    if (g->rank() == 0) std::iota(v.begin(), v.end(), 0.0f);
    std::uint32_t lcg = 12345u + g->rank();
    for (auto& x : v) {
      refs.push_back(g->rank() == 0 ? g->send(std::span<const float>(&x, 1), 1) : g->recv(std::span<float>(&x, 1), 0));
      // Some work between posts (0-15 us), so a transfer finds the group's
      // thread at every point of taking up the one before.
      lcg = lcg * 1664525u + 1013904223u;
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(lcg >> 28);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    co_await when_all(std::move(refs));
    int wrong = 0;
    for (int k = 0; k < count; ++k) wrong += v[static_cast<std::size_t>(k)] != static_cast<float>(k);
    co_return wrong;
  }
  /// Rank 0 sends n floats, rank 1 expects m.
  Task<void> mismatched(std::size_t n, std::size_t m) {
    auto g = coll::group("pp");
    std::vector<float> v(g->rank() == 0 ? n : m);
    if (g->rank() == 0)
      co_await g->send(std::span<const float>(v), 1);
    else
      co_await g->recv(std::span<float>(v), 0);
  }
  /// Rank 1 receives what rank 0 never sends.
  Task<void> orphan_recv() {
    auto g = coll::group("pp");
    if (g->rank() == 1) {
      std::vector<float> v(4);
      co_await g->recv(std::span<float>(v), 0);
    }
  }
  /// Sends after transfers are mixed with a collective on the same group.
  Task<float> then_allreduce() {
    auto g = coll::group("pp");
    const std::uint32_t peer = 1 - g->rank();
    std::vector<float> out(1000, 1.0f), in(1000);
    auto s = g->send(std::span<const float>(out), peer);
    auto rr = g->recv(std::span<float>(in), peer);
    std::vector<float> sum{static_cast<float>(g->rank() + 1)};
    co_await g->allreduce(std::span<float>(sum));
    co_await s;
    co_await rr;
    co_return sum[0] + in[0];
  }
  /// Bad arguments: a tag out of range, a peer that is itself.
  Task<std::string> bad_args() {
    auto g = coll::group("pp");
    std::vector<float> v(4);
    std::string out;
    try {
      co_await g->send(std::span<const float>(v), 1 - g->rank(), coll::kP2PTags);
    } catch (const UsageError& e) {
      out += e.what();
    }
    out += " | ";
    try {
      co_await g->recv(std::span<float>(v), g->rank());
    } catch (const UsageError& e) {
      out += e.what();
    }
    co_return out;
  }
};

}  // namespace

TROUPE_ACTOR(P2PMember, send_then_recv, tags_out_of_order, pipeline, ring_batches, stream_in_order, mismatched,
             orphan_recv, then_allreduce, bad_args);

TEST_CASE("neighbours that both send and then receive do not wait on each other", "[coll][p2p]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<P2PMember>(2);
  coll::create_group(rt, mesh, opts(backend));
  // Messages from one float to many slots, several in flight per channel.
  for (std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{300000}}) {
    INFO("n " << n);
    for (bool ok : mesh.call(&P2PMember::send_then_recv, n, 8).get(60s)) CHECK(ok);
  }
}

TEST_CASE("tags are separate channels; each is received in send order", "[coll][p2p]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<P2PMember>(2);
  coll::create_group(rt, mesh, opts(backend));
  for (std::size_t n : {std::size_t{3}, std::size_t{100000}}) {
    for (bool ok : mesh.call(&P2PMember::tags_out_of_order, n).get(60s)) CHECK(ok);
  }
}

TEST_CASE("a pipeline's transfers and ring batches arrive intact for 2 to 4 ranks", "[coll][p2p]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  for (std::size_t W : {2u, 3u, 4u}) {
    auto mesh = rt.spawn_mesh<P2PMember>(W);
    coll::create_group(rt, mesh, opts(backend));
    for (bool ok : mesh.call(&P2PMember::pipeline, std::size_t{40000}, 6).get(60s)) CHECK(ok);
    for (bool ok : mesh.call(&P2PMember::ring_batches, std::size_t{5000}, 5).get(60s)) CHECK(ok);
    for (bool ok : mesh.call(&P2PMember::ring_batches, std::size_t{0}, 1).get(60s)) CHECK(ok);
  }
}

TEST_CASE("one-at-a-time transfers on a channel keep their order however they are moved", "[coll][p2p]") {
  // Transfers move inline on the caller's thread or on the group's thread;
  // a channel's order must hold across the hand-over between the two.
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<P2PMember>(2);
  coll::create_group(rt, mesh, opts(backend));
  for (int round = 0; round < 60; ++round) {
    INFO("round " << round);
    for (int wrong : mesh.call(&P2PMember::stream_in_order, 1000).get(60s)) REQUIRE(wrong == 0);
  }
}

TEST_CASE("transfers finish before a later collective on the same group", "[coll][p2p]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  auto mesh = rt.spawn_mesh<P2PMember>(2);
  coll::create_group(rt, mesh, opts(backend));
  for (float v : mesh.call(&P2PMember::then_allreduce).get(60s)) CHECK(v == 4.0f);
}

TEST_CASE("a receive of another size, or one nobody sends, fails naming the ranks", "[coll][p2p]") {
  const auto backend = GENERATE(coll::BackendKind::shm, coll::BackendKind::tcp);
  INFO("backend " << coll::to_string(backend));
  Runtime rt({.threads = 2});
  {
    auto mesh = rt.spawn_mesh<P2PMember>(2);
    coll::create_group(rt, mesh, opts(backend));
    auto a = mesh[0].call(&P2PMember::mismatched, std::size_t{10}, std::size_t{11});
    auto b = mesh[1].call(&P2PMember::mismatched, std::size_t{10}, std::size_t{11});
    REQUIRE_THROWS_WITH(b.get(60s), Catch::Contains("rank 0 sends float32 x 10 but rank 1 receives float32 x 11"));
  }
  {
    auto mesh = rt.spawn_mesh<P2PMember>(2);
    coll::create_group(rt, mesh, opts(backend, 300));
    mesh[0].call(&P2PMember::orphan_recv).get(60s);
    REQUIRE_THROWS_WITH(mesh[1].call(&P2PMember::orphan_recv).get(60s), Catch::Contains("timed out after 300 ms waiting for rank 0 to send what rank 1 receives"));
  }
  {
    auto mesh = rt.spawn_mesh<P2PMember>(2);
    coll::create_group(rt, mesh, opts(backend));
    const std::string why = mesh[0].call(&P2PMember::bad_args).get(60s);
    CHECK_THAT(why, Catch::Contains("tag 4: tags go from 0 to 3"));
    CHECK_THAT(why, Catch::Contains("rank 0 cannot receive from rank 0"));
  }
}
