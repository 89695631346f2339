// Placement bookkeeping without any daemon: which node and which devices a
// request gets, what infeasible errors say, and bundle strategies.
#include <catch2/catch.hpp>

#include "runtime/cluster/placement.hpp"
#include "runtime/errors.hpp"

using namespace troupe;
using namespace troupe::cluster;

namespace {
std::vector<Slot> three_nodes() {
  return {Slot::node_slot(1, "node 1", {{"CPU", 4}, {"GPU", 2}}), Slot::node_slot(2, "node 2", {{"CPU", 2}}),
          Slot::node_slot(3, "node 3", {{"CPU", 2}, {"ssd", 1}})};
}
}  // namespace

TEST_CASE("fractional GPU requests pack onto one device; whole ones take free devices", "[placement]") {
  Slot s = Slot::node_slot(1, "node 1", {{"GPU", 2}});
  auto a = take(s, {{"GPU", 0.5}});
  auto b = take(s, {{"GPU", 0.25}});
  REQUIRE(a.devices == std::vector<unsigned>{0});
  REQUIRE(b.devices == std::vector<unsigned>{0});
  CHECK(shortfall(s, {{"GPU", 1}}).empty());
  auto c = take(s, {{"GPU", 1}});
  CHECK(c.devices == std::vector<unsigned>{1});
  CHECK(shortfall(s, {{"GPU", 0.5}}).find("GPU: wants 0.5") != std::string::npos);
  CHECK(shortfall(s, {{"GPU", 0.25}}).empty());
  give_back(s, c);
  CHECK(s.gpu_used[1] == 0);
  auto d = take(s, {{"GPU", 1}}, 1);
  CHECK(d.devices == std::vector<unsigned>{1});
  CHECK_FALSE(shortfall(s, {{"GPU", 0.1}}, 1).empty());
  CHECK(shortfall(s, {{"GPU", 0.1}}, 7).find("wants device 7") != std::string::npos);
  give_back(s, a);
  give_back(s, b);
  give_back(s, d);
  CHECK(s.used.empty());
  CHECK(s.actors == 0);
}

TEST_CASE("choose prefers the requester's node, then the least busy, and names every shortfall", "[placement]") {
  auto nodes = three_nodes();
  CHECK(choose(nodes, {{"CPU", 1}}, -1, 2, "a") == 1);
  CHECK(choose(nodes, {{"ssd", 1}}, -1, 0, "a") == 2);
  nodes[0].actors = 3;
  CHECK(choose(nodes, {{"CPU", 1}}, -1, 0, "a") == 1);
  nodes[1].alive = false;
  CHECK(choose(nodes, {{"CPU", 1}}, -1, 2, "a") == 2);
  try {
    choose(nodes, {{"CPU", 3}, {"ssd", 1}}, -1, 0, "actor 'x'");
    FAIL("no error");
  } catch (const Infeasible& e) {
    std::string m = e.what();
    CHECK_THAT(m, Catch::Contains("actor 'x' asks for CPU=3, ssd=1"));
    CHECK_THAT(m, Catch::Contains("node 1: ssd: wants 1, has none"));
    CHECK_THAT(m, Catch::Contains("node 3: CPU: wants 3, 2 of 2 free"));
    CHECK_THAT(m, !Catch::Contains("node 2"));  // dead nodes are not candidates
  }
  CHECK_THROWS_AS(choose(nodes, {{"GPU", 1.5}}, -1, 0, "a"), UsageError);
  CHECK_THROWS_AS(choose(nodes, {{"CPU", -1}}, -1, 0, "a"), UsageError);
  std::vector<Slot> none;
  CHECK_THROWS_WITH(choose(none, {}, -1, 0, "a"), Catch::Contains("no alive node"));
}

TEST_CASE("bundles follow PACK, SPREAD, STRICT_PACK and STRICT_SPREAD", "[placement]") {
  auto nodes = three_nodes();
  std::vector<ResourceMap> two_cpu(2, {{"CPU", 1}});
  auto p = place_bundles(nodes, two_cpu, Strategy::pack);
  CHECK(p[0] == p[1]);
  CHECK(place_bundles(nodes, two_cpu, Strategy::strict_pack) == p);
  auto s = place_bundles(nodes, std::vector<ResourceMap>(3, {{"CPU", 1}}), Strategy::spread);
  CHECK((s[0] != s[1] && s[1] != s[2] && s[0] != s[2]));
  // SPREAD reuses nodes once every node has a bundle.
  auto s4 = place_bundles(nodes, std::vector<ResourceMap>(4, {{"CPU", 1}}), Strategy::spread);
  CHECK(s4.size() == 4);
  CHECK_THROWS_WITH(place_bundles(nodes, std::vector<ResourceMap>(4, {{"CPU", 1}}), Strategy::strict_spread),
                    Catch::Contains("needs 4 distinct nodes"));
  // STRICT_SPREAD backtracks: the ssd bundle must get node 3 even when listed last.
  auto ss = place_bundles(nodes, {{{"CPU", 1}}, {{"CPU", 1}}, {{"ssd", 1}}}, Strategy::strict_spread);
  CHECK(ss[2] == 2);
  CHECK_THROWS_AS(place_bundles(nodes, {{{"CPU", 3}}, {{"CPU", 3}}}, Strategy::strict_pack), Infeasible);
  // PACK falls back to several nodes: 3 + 2 CPUs fit on nodes 1 and 2/3.
  auto pk = place_bundles(nodes, {{{"CPU", 3}}, {{"CPU", 2}}}, Strategy::pack);
  CHECK(pk[0] != pk[1]);
  CHECK_THROWS_WITH(place_bundles(nodes, {{{"CPU", 5}}}, Strategy::pack),
                    Catch::Contains("bundle 0 (CPU=5) fits on no node"));
  CHECK_THROWS_AS(place_bundles(nodes, {}, Strategy::pack), UsageError);
}

TEST_CASE("daemons on one host count its own resources once; what they were given stays theirs", "[placement]") {
  using troupe::cluster::HostMember;
  using troupe::cluster::host_shares;
  const troupe::cluster::ResourceMap found{{"CPU", 8}, {"memory", 16e9}, {"GPU", 2}};
  std::vector<HostMember> nodes = {
      {1, "host-a", found, {"CPU", "memory", "GPU"}, true},
      {2, "host-a", {{"CPU", 8}, {"memory", 16e9}, {"GPU", 2}, {"ssd", 1}}, {"CPU", "memory", "GPU"}, true},
      {3, "host-a", {{"CPU", 2}, {"memory", 16e9}, {"GPU", 2}}, {"memory", "GPU"}, true},  // --resources CPU=2
      {4, "host-b", found, {"CPU", "memory", "GPU"}, true},
  };
  auto s = host_shares(nodes);
  CHECK(s[1].total == found);
  CHECK(s[1].shares_with == 0);
  CHECK(s[2].total == troupe::cluster::ResourceMap{{"CPU", 0}, {"memory", 0}, {"GPU", 0}, {"ssd", 1}});
  CHECK(s[2].shares_with == 1);
  CHECK(s[3].total == troupe::cluster::ResourceMap{{"CPU", 2}, {"memory", 0}, {"GPU", 0}});
  CHECK(s[4].total == found);  // another host
  CHECK(s[4].shares_with == 0);
  // The owner dies: the next live node of the host takes the host's own share.
  nodes[0].alive = false;
  s = host_shares(nodes);
  CHECK(s[2].total == troupe::cluster::ResourceMap{{"CPU", 8}, {"memory", 16e9}, {"GPU", 2}, {"ssd", 1}});
  CHECK(s[2].shares_with == 0);
  CHECK(s[3].shares_with == 2);
  CHECK(s[1].shares_with == 2);
}
