// Actors placed on real node daemons: a head and two nodes as processes on
// loopback, this test binary as the driver (its workers re-run it). Resource
// requests, fractional GPUs (nodes declare GPU=2 to the head), placement
// groups, the actor directory, kill -9 of a worker and of a node daemon.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "runtime/cluster/client.hpp"
#include "runtime/remote/extension.hpp"
#include "runtime/troupe.hpp"
#include "tests/support/cluster.hpp"
#include "trainers/pipeline.hpp"
#include "tests/support/child.hpp"
#include "tests/support/eventually.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using troupe::test::eventually;
using Cluster = troupe::test::TestCluster;

namespace {

class Probe {
 public:
  explicit Probe(int base) : base_(base) {}
  int add(int v) { return base_ += v; }
  int pid() const { return static_cast<int>(::getpid()); }
  int parent() const { return static_cast<int>(::getppid()); }
  std::string device() const {
    const char* d = std::getenv("TROUPE_DEVICE");
    return d ? d : "none";
  }
  std::uint64_t my_id() const { return self().id(); }
  int fail(std::string why) { throw ActorFailure(why); }

 private:
  int base_;
};
TROUPE_ACTOR(Probe, add, pid, parent, device, my_id, fail);

class Local {};

Runtime driver(const Cluster& c) { return Runtime(RuntimeOptions{.threads = 2, .address = c.address, .token = c.token}); }


}  // namespace

TEST_CASE("actors go to the node daemon that has the resources they ask for", "[placement]") {
  Cluster c;
  auto n2 = c.node("zone_a=1,GPU=2");  // node 2
  auto n3 = c.node("zone_b=2");        // node 3
  Runtime rt = driver(c);

  auto b = rt.spawn<Probe>(10, Options{}.resource("zone_b", 1).name("b"));
  CHECK(b.call(&Probe::add, 5).get(10s) == 15);
  CHECK(b.call(&Probe::parent).get(10s) == n3->pid());  // its worker is a child of node 3's daemon
  CHECK(b.remote()->node() == 3);

  // Fractional GPUs pack onto one device; a whole GPU takes a free one.
  auto g1 = rt.spawn<Probe>(0, Options{}.gpus(0.5));
  auto g2 = rt.spawn<Probe>(0, Options{}.gpus(0.5));
  auto g3 = rt.spawn<Probe>(0, Options{}.gpus(1));
  CHECK(g1.call(&Probe::device).get(10s) == "0");
  CHECK(g2.call(&Probe::device).get(10s) == "0");
  CHECK(g3.call(&Probe::device).get(10s) == "1");
  CHECK(g1.call(&Probe::parent).get(10s) == n2->pid());
  CHECK_THROWS_AS(rt.spawn<Probe>(0, Options{}.gpus(0.25)), Infeasible);
  CHECK_THROWS_WITH(rt.spawn<Probe>(0, Options{}.gpus(0.25)),
                    Catch::Contains("GPU: wants 0.25") && Catch::Contains("node 2") &&
                        Catch::Contains("node 3") && Catch::Contains("has none"));
  CHECK_THROWS_WITH(rt.spawn<Probe>(0, Options{}.resource("zone_b", 3)),
                    Catch::Contains("zone_b: wants 3, 1 of 2 free"));

  // The directory and the status see them; a stopped actor frees its GPU share.
  // The directory hears "alive" from the driver, on its own connection to the
  // head, after the worker answered: it may lag the calls above a little.
  REQUIRE(c.cli("actors").exit_code == 0);
  auto actors = c.poll("actors", [](const std::string& o) { return Cluster::count(o, "\"state\":\"ALIVE\"") == 4; });
  CHECK(Cluster::count(actors, "\"state\":\"ALIVE\"") == 4);
  CHECK_THAT(actors, Catch::Contains("\"name\":\"b\"") && Catch::Contains("Probe"));
  auto status = c.cli("status");
  CHECK_THAT(status.out, Catch::Contains("\"ALIVE\":4"));
  CHECK_THAT(c.cli("actors", false).out, Catch::Contains("ALIVE") && Catch::Contains("zone_b=1"));
  g1.stop().get(10s);
  auto out = c.poll("actors", [](const std::string& o) { return Cluster::count(o, "\"state\":\"DEAD\"") == 1; });
  CHECK_THAT(out, Catch::Contains("stopped"));
  auto g4 = rt.spawn<Probe>(0, Options{}.gpus(0.25));
  CHECK(g4.call(&Probe::device).get(10s) == "0");
}

TEST_CASE("a worker killed with -9 on a node is reported, restarted and its call retried", "[placement]") {
  Cluster c;
  auto n2 = c.node("zone=1");
  Runtime rt = driver(c);
  auto a = rt.spawn<Probe>(1, Options{}.resource("zone", 1).max_restarts(1).max_call_retries(1));
  const int first = a.call(&Probe::pid).get(10s);
  CHECK(a.call(&Probe::parent).get(10s) == n2->pid());
  ::kill(first, SIGKILL);
  eventually([&]() {
    try {
      return a.call(&Probe::pid).get(10s) != first;
    } catch (const ActorDied&) {
      return false;
    }
  });
  auto out = c.poll("actors", [](const std::string& o) { return o.find("\"restarts\":1") != std::string::npos; });
  CHECK_THAT(out, Catch::Contains("\"restarts\":1") && Catch::Contains("\"state\":\"ALIVE\""));
  // Out of restarts: the caller gets ActorDied naming the signal.
  ::kill(a.call(&Probe::pid).get(10s), SIGKILL);
  eventually([&]() { return !a.alive(); });
  CHECK_THROWS_WITH(a.call(&Probe::pid).get(10s), Catch::Contains("signal 9"));
  out = c.poll("actors", [](const std::string& o) { return o.find("\"state\":\"DEAD\"") != std::string::npos; });
  CHECK_THAT(out, Catch::Contains("signal 9"));
}

TEST_CASE("when a node daemon dies its actors restart on another node", "[placement]") {
  Cluster c;
  auto n2 = c.node("pool=2");
  auto n3 = c.node("pool=2");
  Runtime rt = driver(c);
  auto a = rt.spawn<Probe>(7, Options{}.resource("pool", 1).max_restarts(2));
  auto once = rt.spawn<Probe>(7, Options{}.resource("pool", 1));  // the least busy node: the other one
  const auto node = a.remote()->node();
  REQUIRE(once.remote()->node() != node);
  auto& victim = node == 2 ? n2 : n3;
  auto& other = node == 2 ? n3 : n2;
  const int other_pid = other->pid();
  once.stop().get(10s);
  victim->signal(SIGKILL);
  victim->wait();
  eventually([&]() {
    try {
      return a.call(&Probe::parent).get(10s) == other_pid;
    } catch (const ActorDied&) {
      return false;
    }
  });
  CHECK(a.remote()->node() != node);
  CHECK(a.call(&Probe::add, 1).get(10s) == 8);  // re-created from its constructor arguments

  // Without restarts, callers get ActorDied naming the dead node.
  auto b = rt.spawn<Probe>(1, Options{}.resource("pool", 1));
  REQUIRE(b.call(&Probe::add, 1).get(10s) == 2);
  other->signal(SIGKILL);
  other->wait();
  eventually([&]() { return !b.alive(); });
  CHECK_THROWS_WITH(b.call(&Probe::pid).get(10s), Catch::Contains("died"));
  auto nodes = c.poll("status", [](const std::string& o) { return o.find("\"nodes_dead\":2") != std::string::npos; });
  CHECK_THAT(nodes, Catch::Contains("\"nodes_dead\":2"));
}

TEST_CASE("placement groups reserve bundles by strategy and fail at once when they cannot", "[placement]") {
  Cluster c;
  // Three daemons on this one machine: nodes 2 and 3 are given CPUs of their
  // own (the host's found CPUs count once, on the head's node).
  auto n2 = c.node("slot=1,CPU=2");
  auto n3 = c.node("slot=1,CPU=2");
  Runtime rt = driver(c);
  // Nodes 1 (the head), 2 and 3.
  auto spread = rt.placement_group({{{"CPU", 0.1}}, {{"CPU", 0.1}}, {{"CPU", 0.1}}}, Strategy::strict_spread);
  REQUIRE(spread.nodes.size() == 3);
  CHECK(spread.nodes[0] != spread.nodes[1]);
  CHECK(spread.nodes[1] != spread.nodes[2]);
  CHECK(spread.nodes[0] != spread.nodes[2]);
  CHECK_THROWS_WITH(rt.placement_group(std::vector<Resources>(4, {{"CPU", 0.1}}), Strategy::strict_spread),
                    Catch::Contains("needs 4 distinct nodes") && Catch::Contains("3 alive"));
  CHECK_THROWS_AS(rt.placement_group({{{"slot", 1}}, {{"slot", 1}}}, Strategy::strict_pack), Infeasible);
  CHECK_THROWS_WITH(rt.placement_group({{{"slot", 1}}, {{"slot", 1}}}, Strategy::strict_pack),
                    Catch::Contains("STRICT_PACK") && Catch::Contains("slot: wants 1"));
  auto pack = rt.placement_group({{{"CPU", 0.1}}, {{"CPU", 0.1}}}, Strategy::pack);
  CHECK(pack.nodes[0] == pack.nodes[1]);
  // PACK falls back to several nodes when one cannot hold it all.
  auto slots = rt.placement_group({{{"slot", 1}}, {{"slot", 1}}}, Strategy::pack);
  CHECK(slots.nodes[0] != slots.nodes[1]);
  CHECK_THROWS_WITH(rt.spawn<Probe>(0, Options{}.resource("slot", 1)), Catch::Contains("slot: wants 1, 0 of 1 free"));

  // Actors in a bundle run on that bundle's node and draw on its reservation.
  auto in1 = rt.spawn<Probe>(0, Options{}.cpus(0.1).placement_group(spread, 1));
  CHECK(in1.remote()->node() == spread.nodes[1]);
  CHECK(in1.call(&Probe::add, 2).get(10s) == 2);
  CHECK_THROWS_WITH(rt.spawn<Probe>(0, Options{}.cpus(0.1).placement_group(spread, 1)),
                    Catch::Contains("bundle 1 of placement group"));
  auto in_slot = rt.spawn<Probe>(0, Options{}.resource("slot", 1).placement_group(slots));
  CHECK(in_slot.call(&Probe::add, 1).get(10s) == 1);
  auto status = c.cli("status");
  CHECK_THAT(status.out, Catch::Contains("\"placement_groups\":3"));

  // Removing a group kills its actors and frees its reservation.
  rt.remove_placement_group(slots);
  eventually([&]() { return !in_slot.alive(); });
  auto again = rt.spawn<Probe>(0, Options{}.resource("slot", 1));
  CHECK(again.call(&Probe::add, 3).get(10s) == 3);
}

TEST_CASE("a driver joins a running cluster with --address / TROUPE_ADDRESS", "[placement]") {
  Cluster c;
  ::setenv("TROUPE_TOKEN", c.token.c_str(), 1);
  int argc = 3;
  std::string a0 = "driver", a1 = "--address", a2 = c.address;
  char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
  troupe::init(argc, argv);
  CHECK(argc == 1);
  {
    Runtime rt({.threads = 1});
    auto p = rt.spawn<Probe>(3, Options{}.process());
    CHECK(p.call(&Probe::add, 1).get(10s) == 4);
    CHECK(remote::cluster_of(rt).head_address() == c.address);
    CHECK(remote::cluster_of(rt).local_node() == 0);  // a joined driver is no node: the head's node started the worker
    CHECK(p.call(&Probe::parent).get(10s) == c.head->pid());
  }
  int argc2 = 1;
  char* argv2[] = {a0.data(), nullptr};
  troupe::init(argc2, argv2);  // back to the embedded default
  ::unsetenv("TROUPE_TOKEN");
  Runtime rt({.threads = 1});
  auto p = rt.spawn<Probe>(3, Options{}.process());
  CHECK(p.call(&Probe::parent).get(10s) == ::getpid());
  CHECK(remote::cluster_of(rt).local_node() != 0);
}

TEST_CASE("a process actor has one id: in its driver, in its worker and in `troupe actors`", "[placement]") {
  Cluster c;
  auto n2 = c.node("zone=4");
  Runtime rt = driver(c);
  // In-process actors take ids from the same counter first.
  std::vector<ActorRef<Local>> locals;
  for (int i = 0; i < 5; ++i) locals.push_back(rt.spawn<Local>());
  auto a = rt.spawn<Probe>(1, Options{}.resource("zone", 1).name("first"));
  CHECK(a.call(&Probe::my_id).get(10s) == a.id());
  // A second driver, in a process of its own, proposes the same id for its
  // Probe: the head gives it another, and that driver uses it.
  ::setenv("TROUPE_TEST_CLUSTER", c.address.c_str(), 1);  // for the child only
  ::setenv("TROUPE_TEST_TOKEN", c.token.c_str(), 1);
  troupe::test::Child second({"/proc/self/exe", "[.second_driver]"});
  ::unsetenv("TROUPE_TEST_CLUSTER");
  ::unsetenv("TROUPE_TEST_TOKEN");
  auto line = second.wait_for_line("ids ", 30s);
  INFO(second.out() << second.err());
  std::uint64_t b_id = 0, b_self = 0;
  REQUIRE(std::sscanf(line.c_str(), "ids %lu %lu", &b_id, &b_self) == 2);
  CHECK(b_self == b_id);
  CHECK(b_id != a.id());
  auto out = c.poll("actors", [](const std::string& o) { return Cluster::count(o, "\"state\":\"ALIVE\"") == 2; });
  for (auto [id, name] : {std::pair{a.id(), "first"}, std::pair{b_id, "second"}}) {
    auto at = out.find(fmt::format("\"name\":\"{}\"", name));
    REQUIRE(at != std::string::npos);
    auto id_at = out.rfind("{\"id\":", at);
    REQUIRE(id_at != std::string::npos);
    CHECK(std::stoull(out.substr(id_at + 6)) == id);
  }
  // A later local actor never takes a cluster id this driver uses.
  auto later = rt.spawn<Local>();
  CHECK(later.id() != a.id());
}

// Run by the case above as a driver process of its own.
TEST_CASE("second driver", "[.second_driver]") {
  if (!std::getenv("TROUPE_TEST_CLUSTER")) return;  // a run of the whole file: only the case above starts it
  Runtime rt(RuntimeOptions{.threads = 2, .address = std::getenv("TROUPE_TEST_CLUSTER"),
                            .token = std::getenv("TROUPE_TEST_TOKEN")});
  // The same in-process actors first: this driver then proposes the id the
  // first driver's Probe has on the cluster.
  std::vector<ActorRef<Local>> locals;
  for (int i = 0; i < 5; ++i) locals.push_back(rt.spawn<Local>());
  auto b = rt.spawn<Probe>(1, Options{}.resource("zone", 1).name("second"));
  auto self_id = b.call(&Probe::my_id).get(10s);
  std::printf("ids %lu %lu\n", static_cast<unsigned long>(b.id()), static_cast<unsigned long>(self_id));
  std::fflush(stdout);
  // Stays (its actor alive) until the first driver has read the directory
  // and kills this process.
  std::this_thread::sleep_for(60s);
}

TEST_CASE("a death cause of several lines keeps the `troupe actors` table one row per actor", "[placement]") {
  Cluster c;
  Runtime rt = driver(c);
  auto a = rt.spawn<Probe>(1, Options{}.process().name("multi"));
  CHECK_THROWS_AS(a.call(&Probe::fail, std::string("first line\nsecond line\n  third")).get(10s), ActorDied);
  c.poll("actors", [](const std::string& o) { return o.find("\"state\":\"DEAD\"") != std::string::npos; });
  auto table = c.cli("actors", false);
  REQUIRE(table.exit_code == 0);
  INFO(table.out);
  CHECK_THAT(table.out, Catch::Contains("first line | second line |   third"));
  std::istringstream lines(table.out);
  std::string line;
  int rows = 0;
  while (std::getline(lines, line)) {
    CHECK((line.rfind("ID", 0) == 0 || std::isdigit(static_cast<unsigned char>(line[0]))));
    ++rows;
  }
  CHECK(rows == 2);  // the header and the one actor
}

TEST_CASE("a process actor whose last handle is dropped is listed as released, not killed", "[placement]") {
  Cluster c;
  Runtime rt = driver(c);
  {
    auto a = rt.spawn<Probe>(1, Options{}.process().name("dropped"));
    CHECK(a.call(&Probe::add, 1).get(10s) == 2);
  }  // the driver lets go of it
  auto out = c.poll("actors", [](const std::string& o) { return o.find("\"state\":\"DEAD\"") != std::string::npos; });
  CHECK_THAT(out, Catch::Contains("released: no ActorRef to it was left in its driver"));
  CHECK_THAT(out, !Catch::Contains("\"death_cause\":\"killed\""));
}

TEST_CASE("3-D: each tensor-parallel group is placed on one node; one that fits on none is spread, and the run "
          "says so",
          "[placement][tp]") {
  Cluster c;
  // Each stage actor takes a slot: node 2 holds a whole tp group of 2, nodes
  // 3 and 4 one rank each.
  auto n2 = c.node("slot=2");
  auto n3 = c.node("slot=1");
  auto n4 = c.node("slot=1");
  Runtime rt = driver(c);
  train::TrainConfig cfg;
  cfg.hidden = {32, 16};
  cfg.tp_blocks = {0};
  cfg.batch = 16;
  cfg.train_limit = 256;  // 8 steps of 2 x 16
  pipeline::PipelineOptions o;
  o.stages = 2;
  o.microbatches = 2;
  o.tensor_parallel = 2;
  o.chunk_steps = 8;
  o.eval_limit = 100;
  o.actor_options = Options{}.resource("slot", 1);
  std::vector<std::uint64_t> node;  // of each stage actor: stage 0's two tp ranks, then stage 1's
  o.after_chunk = [&](std::int64_t, Mesh<pipeline::Stage>& stages) {
    for (std::size_t a = 0; a < stages.size(); ++a) node.push_back(stages[a].remote()->node());
  };
  const auto r = pipeline::PipelineTrainer(rt, cfg, o).fit();
  CHECK(r.steps == 8);
  REQUIRE(node.size() == 4);
  CHECK(node[0] == node[1]);  // stage 0's tp group on one node (node 2, the only one with 2 slots)
  CHECK(node[2] != node[3]);  // stage 1's could not be
  REQUIRE(r.warnings.size() == 1);
  CHECK_THAT(r.warnings[0], Catch::Contains("the 2 tp ranks of replica 0 stage 1 do not fit on one node, so they span 2 "
                                            "nodes"));
}
