// The cluster across separate hosts: network namespaces joined by a bridge
// (198.18.0.0/15 addresses), a head and two node daemons each on its own
// host, this test binary as the driver on the bridge. Root only; skipped with
// the reason otherwise.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <thread>

#include "runtime/cluster/client.hpp"
#include "runtime/remote/extension.hpp"
#include "runtime/troupe.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/coll_member.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/eventually.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using troupe::test::NetnsHosts;
using Cluster = troupe::test::TestCluster;

namespace {

class NetProbe {
 public:
  explicit NetProbe(int base) : base_(base) {}
  int add(int v) { return base_ += v; }
  int parent() const { return static_cast<int>(::getppid()); }

 private:
  int base_;
};
TROUPE_ACTOR(NetProbe, add, parent);


int parent_of(const ActorRef<NetProbe>& a) {
  try {
    return a.call(&NetProbe::parent).get(5s);
  } catch (const Error&) {
    return -1;
  }
}

}  // namespace

TEST_CASE("across network-namespace hosts: placement, direct calls, a killed node's actors move", "[netns]") {
  NetnsHosts hosts(3);
  if (!hosts.ok()) {
    WARN("skipped: " << hosts.why());
    return;
  }
  Cluster c(hosts.on(0), hosts.ip(0));
  auto a = c.node("zone_a=1,pool=1", hosts.on(1));
  auto b = c.node("pool=1", hosts.on(2));
  Runtime rt(RuntimeOptions{.threads = 2, .address = c.address, .token = c.token});
  CHECK(remote::cluster_of(rt).driver_address().rfind(hosts.local_ip() + ":", 0) == 0);

  auto z = rt.spawn<NetProbe>(1, Options{}.resource("zone_a", 1));
  CHECK(z.call(&NetProbe::add, 1).get(10s) == 2);
  CHECK(parent_of(z) == a->pid());  // started by host 1's daemon, dialled back across the bridge

  auto m = rt.spawn<NetProbe>(10, Options{}.resource("pool", 1).max_restarts(1));
  const int first = parent_of(m);
  REQUIRE((first == a->pid() || first == b->pid()));
  auto& victim = first == a->pid() ? a : b;
  const int survivor = first == a->pid() ? b->pid() : a->pid();
  victim->signal(SIGKILL);
  victim->wait();
  CHECK(troupe::test::wait_until([&]() { return parent_of(m) == survivor; }, 15s));
  CHECK(m.call(&NetProbe::add, 1).get(10s) == 11);
  auto actors = c.cli("actors");
  CHECK_THAT(actors.out, Catch::Contains("\"restarts\":1"));
}

TEST_CASE("a partitioned host misses heartbeats; its actor restarts on another host", "[netns]") {
  NetnsHosts hosts(3);
  if (!hosts.ok()) {
    WARN("skipped: " << hosts.why());
    return;
  }
  Cluster c(hosts.on(0), hosts.ip(0));
  auto a = c.node("pool=1", hosts.on(1));
  auto b = c.node("pool=1", hosts.on(2));
  Runtime rt(RuntimeOptions{.threads = 2, .address = c.address, .token = c.token});
  auto m = rt.spawn<NetProbe>(5, Options{}.resource("pool", 1).max_restarts(1).max_call_retries(1));
  const int first = parent_of(m);
  REQUIRE((first == a->pid() || first == b->pid()));
  const int cut = first == a->pid() ? 1 : 2;
  const int survivor = first == a->pid() ? b->pid() : a->pid();
  hosts.set_link(cut, false);  // no FIN, no RST: only silence
  CHECK(troupe::test::wait_until([&]() { return parent_of(m) == survivor; }, 15s));
  auto status = c.cli("nodes");
  CHECK_THAT(status.out, Catch::Contains("missed heartbeats"));
  CHECK(m.call(&NetProbe::add, 1).get(10s) == 6);
  // The cut-off daemon notices it lost the head and exits; its workers die with it.
  auto& cut_node = cut == 1 ? a : b;
  CHECK(cut_node->wait(10s) == 1);
  CHECK_THAT(cut_node->err(), Catch::Contains("lost the head"));
  hosts.set_link(cut, true);
}

TEST_CASE("a collective group across hosts uses TCP; a dead host fails the others, naming the rank", "[netns][coll]") {
  NetnsHosts hosts(3);
  if (!hosts.ok()) {
    WARN("skipped: " << hosts.why());
    return;
  }
  Cluster c(hosts.on(0), hosts.ip(0));
  auto a = c.node("slot=1", hosts.on(1));
  auto b = c.node("slot=1", hosts.on(2));
  Runtime rt(RuntimeOptions{.threads = 2, .address = c.address, .token = c.token});
  auto pg = rt.placement_group({{{"slot", 1}}, {{"slot", 1}}}, Strategy::strict_spread);
  std::vector<ActorRef<troupe::test::CollMember>> ms{
      rt.spawn<troupe::test::CollMember>(Options{}.placement_group(pg, 0)),
      rt.spawn<troupe::test::CollMember>(Options{}.placement_group(pg, 1))};
  for (auto& m : ms) REQUIRE(m.call(&troupe::test::CollMember::pid).get(10s) > 0);  // attached
  coll::GroupOptions o;
  o.name = "t";
  o.timeout_ms = 20000;
  auto info = coll::create_group(rt, ms, o);
  CHECK(info.backend == coll::BackendKind::tcp);
  for (std::size_t n : {0ul, 1ul, 4099ul, (1ul << 20) + 1}) {
    troupe::test::CollCase cc{"allreduce", 0, n, 0};
    auto r0 = ms[0].call(&troupe::test::CollMember::run, cc);
    auto r1 = ms[1].call(&troupe::test::CollMember::run, cc);
    CHECK(r0.get(30s) == troupe::test::coll_expected(cc, 2, 0));
    CHECK(r1.get(30s) == troupe::test::coll_expected(cc, 2, 1));
  }
  // Rank 1's host dies mid-allreduce: rank 0 fails within seconds, naming rank 1.
  auto pending = ms[0].call(&troupe::test::CollMember::run, troupe::test::CollCase{"allreduce", 0, 1000, 0});
  std::this_thread::sleep_for(100ms);
  const auto t0 = std::chrono::steady_clock::now();
  auto& host1 = pg.nodes[1] == 2 ? a : b;
  host1->signal(SIGKILL);
  CHECK_THROWS_WITH(pending.get(20s), Catch::Contains("rank 1"));
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
}
