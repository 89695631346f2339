// The cluster across separate hosts: network namespaces joined by a bridge
// (198.18.0.0/15 addresses), a head and two node daemons each on its own
// host, this test binary as the driver on the bridge. Root only; skipped with
// the reason otherwise.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <thread>

#include "runtime/troupe.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/netns.hpp"

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

template <class F>
bool eventually(F pred, std::chrono::milliseconds limit = 15s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

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
  CHECK(rt.cluster().driver_address().rfind(hosts.local_ip() + ":", 0) == 0);

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
  CHECK(eventually([&]() { return parent_of(m) == survivor; }));
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
  CHECK(eventually([&]() { return parent_of(m) == survivor; }));
  auto status = c.cli("nodes");
  CHECK_THAT(status.out, Catch::Contains("missed heartbeats"));
  CHECK(m.call(&NetProbe::add, 1).get(10s) == 6);
  // The cut-off daemon notices it lost the head and exits; its workers die with it.
  auto& cut_node = cut == 1 ? a : b;
  CHECK(cut_node->wait(10s) == 1);
  CHECK_THAT(cut_node->err(), Catch::Contains("lost the head"));
  hosts.set_link(cut, true);
}
