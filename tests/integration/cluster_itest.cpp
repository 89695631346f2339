// A head and node daemons as real processes on loopback: joining, status,
// death detection (kill -9 and a frozen daemon), and token checks.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>

#include "tests/support/cluster.hpp"

using namespace std::chrono_literals;
using troupe::test::bin;
using troupe::test::Child;
using troupe::test::run_process;

using Cluster = troupe::test::TestCluster;

TEST_CASE("two node daemons join a head and show in status", "[cluster]") {
  Cluster c;
  auto n1 = c.node("ssd=1");
  auto n2 = c.node();
  auto nodes = c.cli("nodes");
  REQUIRE(nodes.exit_code == 0);
  CHECK(c.count(nodes.out, "\"state\":\"ALIVE\"") == 3);
  CHECK_THAT(nodes.out, Catch::Contains("\"ssd\":1"));
  auto status = c.cli("status");
  CHECK(status.exit_code == 0);
  CHECK_THAT(status.out, Catch::Contains("\"nodes_alive\":3"));
  auto table = c.cli("status", false);
  CHECK_THAT(table.out, Catch::Contains("3 alive") && Catch::Contains("CPU"));
}

TEST_CASE("daemons on one host count its CPUs, memory and GPUs once; what a daemon is given stays its own",
          "[cluster]") {
  Cluster c;            // node 1: the head's, which found this machine's resources
  auto n2 = c.node();   // the same machine again
  auto n3 = c.node("CPU=3");
  auto nodes = c.cli("nodes");
  REQUIRE(nodes.exit_code == 0);
  CHECK(c.count(nodes.out, "\"shares_host_with\":1") == 2);
  auto status = c.cli("status");
  const auto cpus = std::thread::hardware_concurrency();
  // The machine's CPUs once, plus the 3 node 3 was given; not 3x the machine.
  CHECK_THAT(status.out, Catch::Contains(fmt::format("\"CPU\":{}", cpus + 3)));
  auto table = c.cli("nodes", false);
  CHECK_THAT(table.out, Catch::Contains("(shares its host with node 1)"));
  // The node says so too, with what the head counts for it.
  CHECK_THAT(n2->out(), Catch::Contains("this host's own CPUs, memory and GPUs count on node 1"));
  CHECK_THAT(n3->out(), Catch::Contains("CPU=3"));
}

TEST_CASE("the CLI finds a head on this machine through the address file beside the token file", "[cluster]") {
  Cluster c;
  // No --address: the head's address file next to the token file says where.
  auto r = run_process({bin("troupe"), "nodes", "--token-file", c.token_file, "--json"}, 20s);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(c.count(r.out, "\"state\":\"ALIVE\"") == 1);
  const auto addr_file = std::filesystem::path(c.token_file).parent_path() / "head.address";
  CHECK(std::filesystem::exists(addr_file));
  // A head that stops takes its address file with it.
  c.head->signal(SIGTERM);
  CHECK(c.head->wait(10s) == 0);
  CHECK_FALSE(std::filesystem::exists(addr_file));
  auto gone = run_process({bin("troupe"), "nodes", "--token-file", c.token_file}, 20s);
  CHECK(gone.exit_code != 0);
  CHECK_THAT(gone.err, Catch::Contains("no cluster address") && Catch::Contains("head.address"));
}

TEST_CASE("a daemon killed with -9 is declared dead with the cause", "[cluster]") {
  Cluster c;
  auto n1 = c.node();
  auto n2 = c.node();
  n1->signal(SIGKILL);
  n1->wait();
  auto out = c.poll("nodes", [&](const std::string& o) { return c.count(o, "\"state\":\"DEAD\"") == 1; });
  CHECK(c.count(out, "\"state\":\"DEAD\"") == 1);
  CHECK_THAT(out, Catch::Contains("connection lost"));
  CHECK(c.count(out, "\"state\":\"ALIVE\"") == 2);
}

TEST_CASE("a frozen daemon misses heartbeats and is declared dead within the timeout", "[cluster]") {
  Cluster c;
  auto n1 = c.node();
  n1->signal(SIGSTOP);  // the socket stays open; only the heartbeats stop
  auto out = c.poll("nodes", [&](const std::string& o) { return c.count(o, "\"state\":\"DEAD\"") == 1; });
  CHECK_THAT(out, Catch::Contains("missed heartbeats"));
  n1->signal(SIGCONT);
  // The head dropped it; the daemon notices and exits with a clear message.
  CHECK(n1->wait(5s) == 1);
  CHECK_THAT(n1->err(), Catch::Contains("lost the head"));
}

TEST_CASE("the head's death makes its nodes exit with a clear message", "[cluster]") {
  Cluster c;
  auto n1 = c.node();
  c.head->signal(SIGKILL);
  CHECK(n1->wait(5s) == 1);
  CHECK_THAT(n1->err(), Catch::Contains("lost the head"));
}

TEST_CASE("a node with the wrong token is refused and the head keeps serving", "[cluster]") {
  Cluster c;
  auto bad = run_process({bin("troupe-daemon"), "--address", c.address, "--token", "wrong"}, 10s);
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Catch::Contains("does not know the cluster token"));
  CHECK(c.cli("nodes").exit_code == 0);
  CHECK_THAT(c.head->err(), Catch::Contains("dropped peer"));
}

TEST_CASE("daemon and CLI reject bad arguments", "[cluster]") {
  auto r = run_process({bin("troupe-daemon"), "--head", "--resources", "gpu=-2"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("not a non-negative number"));
  CHECK(run_process({bin("troupe-daemon")}).exit_code == 2);
  auto cli = run_process({bin("troupe"), "nodes", "--address", "nowhere"});
  CHECK(cli.exit_code == 2);
  CHECK_THAT(cli.err, Catch::Contains("HOST:PORT"));
}

TEST_CASE("troupe run trains on a running cluster with --address", "[cluster][dp]") {
  Cluster c;
  auto n1 = c.node();
  const auto dir = c.dir / "run";
  std::filesystem::create_directories(dir);
  const auto toml = (dir / "tiny.toml").string();
  {
    std::ofstream f(toml);
    f << "name = \"tiny\"\n[model]\nhidden = [32]\n[data]\ntrain_limit = 512\neval_limit = 200\n"
         "[train]\nstrategy = \"data_parallel\"\nreplicas = 2\nbatch = 32\nepochs = 1\nchunk_steps = 4\n"
         "[checkpoint]\ndir = \"" << (dir / "ckpt").string() << "\"\n[output]\ndir = \"" << (dir / "out").string() << "\"\n";
  }
  ::setenv("TROUPE_TOKEN", c.token.c_str(), 1);
  auto r = run_process({bin("troupe"), "run", toml, "--address", c.address}, std::chrono::seconds(180));
  ::unsetenv("TROUPE_TOKEN");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("cluster " + c.address));
  CHECK_THAT(r.out, Catch::Contains("steps 8"));
  // The replicas ran as actors the head placed.
  auto actors = c.cli("actors");
  CHECK(c.count(actors.out, "Replica") >= 2);
  CHECK(std::filesystem::exists(dir / "ckpt" / "latest.troupeck"));
}
