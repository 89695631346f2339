// `troupe logs`: a worker's output captured by its node's daemon into capped
// files and read through the head, as real processes (the head, a node
// daemon, this test binary as the driver whose workers re-run it).
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "runtime/troupe.hpp"
#include "tests/support/child.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/eventually.hpp"

using namespace std::chrono_literals;
using namespace troupe;
using Cluster = troupe::test::TestCluster;

namespace {
class Talker {
 public:
  int say(std::string line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return 1;
  }
  int complain(std::string line) {
    std::fprintf(stderr, "%s\n", line.c_str());
    return 1;
  }
};
}  // namespace
TROUPE_ACTOR(Talker, say, complain);

TEST_CASE("troupe logs: a worker's stdout and stderr through the head, its tail, following, a node's files",
          "[logs]") {
  Cluster c;
  auto node = c.node("zone=1");
  Runtime rt(RuntimeOptions{.threads = 2, .address = c.address, .token = c.token});
  // One actor on the node daemon, one on the head's own node (both capture).
  auto far = rt.spawn<Talker>(Options{}.process().resource("zone", 1));
  auto near = rt.spawn<Talker>(Options{}.process());
  for (int i = 1; i <= 5; ++i) far.call(&Talker::say, fmt::format("line {}", i)).get(30s);
  far.call(&Talker::complain, std::string("something is off")).get(30s);
  near.call(&Talker::say, std::string("from the head's node")).get(30s);
  const auto id = std::to_string(far.id());

  std::string out;
  troupe::test::eventually([&] {
    out = c.run_cli({"logs", id}).out;
    return out.find("line 5") != std::string::npos;
  });
  CHECK_THAT(out, Catch::Contains("--- troupe: worker process ") && Catch::Contains("line 1\nline 2\nline 3"));
  CHECK_THAT(out, !Catch::Contains("something is off"));
  CHECK_THAT(c.run_cli({"logs", id, "--err"}).out, Catch::Contains("something is off"));
  CHECK(c.run_cli({"logs", id, "--tail", "2"}).out == "line 4\nline 5\n");
  troupe::test::eventually(
      [&] { return c.run_cli({"logs", std::to_string(near.id())}).out.find("from the head's node") != std::string::npos; });
  // A node's files.
  auto files = c.run_cli({"logs", "node:2"});
  CHECK(files.exit_code == 0);
  CHECK_THAT(files.out, Catch::Contains("actor-" + id + ".out") && Catch::Contains("actor-" + id + ".err"));

  // -f: the tail, then what the worker writes next.
  troupe::test::Child follow(
      {troupe::test::bin("troupe"), "logs", id, "-f", "--tail", "1", "--address", c.address, "--token-file", c.token_file});
  CHECK_FALSE(follow.wait_for_line("line 5").empty());
  far.call(&Talker::say, std::string("written later")).get(30s);
  CHECK_FALSE(follow.wait_for_line("written later").empty());
  follow.signal(SIGINT);
  CHECK(follow.wait(10s) == 0);

  // Mistakes are named.
  auto none = c.run_cli({"logs", "999"});
  CHECK(none.exit_code == 1);
  CHECK_THAT(none.err, Catch::Contains("no actor 999"));
  CHECK(c.run_cli({"logs"}).exit_code == 2);
  CHECK(c.run_cli({"logs", "node:x"}).exit_code == 2);
  auto dead = c.run_cli({"logs", "node:7"});
  CHECK_THAT(dead.err, Catch::Contains("no node 7"));
}
