// Watching a cluster with a training job on it, all as real processes: the
// head and a node daemon, `troupe run` as the driver, and every cluster
// command (text and JSON), /metrics, a rank slowed on purpose, `troupe stop`.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "tests/support/cluster.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http.hpp"
#include "tests/support/json.hpp"
#include "tests/support/observe_job.hpp"
#include "tests/support/prom_check.hpp"

using namespace std::chrono_literals;
using troupe::test::bin;
using troupe::test::number;
using troupe::test::start_job;
using Cluster = troupe::test::TestCluster;
namespace fs = std::filesystem;

namespace {

// Slows replica 1 of the job in `jobs` (its worker stopped and continued,
// as a noisy neighbour would) and checks that `troupe jobs` names it as a
// straggler within 10 steps of the slowdown, and that its group sees it
// arrive last.
void check_straggler(Cluster& c, const std::string& jobs) {
  const auto at = jobs.find("\"label\":\"replica 1\"");
  const auto actor = static_cast<std::uint64_t>(number(jobs, "actor", at));
  auto actors = c.run_cli({"actors", "--json", "--filter", "id=" + std::to_string(actor)}).out;
  const auto pid = static_cast<pid_t>(number(actors, "pid"));
  REQUIRE(pid > 0);
  // Stop it, and wait until the job is stalled (no report for 400 ms): the
  // step reported then is where the slowdown starts.
  ::kill(pid, SIGSTOP);
  troupe::test::eventually([&] { return number(c.run_cli({"jobs", "--json"}).out, "ms_since_report") >= 400; });
  const auto stalled = static_cast<std::int64_t>(number(c.run_cli({"jobs", "--json"}).out, "step"));
  std::string named, groups_then;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  for (int cycle = 0; cycle < 4000 && std::chrono::steady_clock::now() < deadline; ++cycle) {
    ::kill(pid, SIGCONT);
    std::this_thread::sleep_for(8ms);  // a duty cycle: this is the load, not a wait for an event
    ::kill(pid, SIGSTOP);
    std::this_thread::sleep_for(8ms);
    if (cycle % 8 != 7) continue;
    auto now = c.run_cli({"jobs", "--json"}).out;
    if (named.empty() && now.find("\"text\":\"rank 1 (replica 1): ") != std::string::npos) named = now;
    // The group sees the same rank: it arrives last at the all-reduces.
    if (groups_then.empty()) {
      auto g = c.run_cli({"groups", "--json"}).out;
      if (number(g, "last_rank") == 1) groups_then = g;
    }
    if ((!named.empty() && !groups_then.empty()) || now.find("\"state\":\"running\"") == std::string::npos) break;
  }
  ::kill(pid, SIGCONT);
  INFO("stalled at step " << stalled << ": " << named);
  REQUIRE(!named.empty());
  const auto s = named.find("\"rank\":1,\"label\":\"replica 1\",\"compute_s");
  REQUIRE(s != std::string::npos);
  CHECK(number(named, "slowdown", s) >= 1.3);
  CHECK(number(named, "since_step", s) - static_cast<double>(stalled) <= 10);
  CHECK_THAT(named, Catch::Contains("rank 1 (replica 1): "));
  INFO(groups_then);
  CHECK(number(groups_then, "last_rank") == 1);
  CHECK(number(groups_then, "last_share") > 0);  // a stopped worker reports late: its share mixes intervals
}

}  // namespace

TEST_CASE("a cluster with a job running: every command, /metrics, a straggler named, troupe stop", "[observe]") {
  Cluster c;
  auto node = c.node();
  {
    auto st = c.run_cli({"status", "--json"});
    INFO(st.out << st.err);
    REQUIRE(st.exit_code == 0);
    CHECK_THAT(st.out, Catch::Contains("\"healthy\":true") && Catch::Contains("\"jobs\":[]"));
    CHECK_THAT(c.run_cli({"status"}).out, Catch::Contains(": healthy"));
  }
  const auto dir = c.dir / "job";
  fs::create_directories(dir);
  // No driver yet: nothing to trace, and the command says so.
  {
    auto none = c.run_cli({"trace", "--seconds", "0.2", "-o", (dir / "none.json").string()});
    CHECK(none.exit_code == 1);
    CHECK_THAT(none.err, Catch::Contains("no driver is connected"));
    CHECK(!fs::exists(dir / "none.json"));  // nothing written when there is nothing to write
    auto bad = c.run_cli({"trace", "--seconds", "0"});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("--seconds wants 0.001 to 600, got '0'"));
  }
  auto run = start_job(c, dir, "observed");
  std::string jobs;
  troupe::test::eventually(
      [&] {
        jobs = c.run_cli({"jobs", "--json"}).out;
        UNSCOPED_INFO(jobs);
        return jobs.find("\"state\":\"running\"") != std::string::npos && number(jobs, "step") >= 6;
      },
      60s);
  INFO(jobs << run->err());
  CHECK_THAT(jobs, Catch::Contains("\"name\":\"observed\"") && Catch::Contains("\"strategy\":\"data parallel\"") &&
                       Catch::Contains("\"total_steps\":400") && Catch::Contains("\"label\":\"replica 1\""));
  CHECK(number(jobs, "samples_per_s") > 0);
  CHECK(number(jobs, "forward") > 0);
  CHECK(number(jobs, "backward") > 0);
  {
    auto table = c.run_cli({"jobs"});
    CHECK_THAT(table.out, Catch::StartsWith("ID") && Catch::Contains("observed") && Catch::Contains("running") &&
                              Catch::Contains("/400") && Catch::Contains("fwd "));
  }

  // Actors: filters before the limit, and a line for what the limit left out.
  {
    // A key, or the column's title as the table shows it.
    auto both = c.run_cli({"actors", "--json", "--filter", "CLASS=troupe::dp::Replica", "--filter", "state=alive"});
    REQUIRE(both.exit_code == 0);
    CHECK(Cluster::count(both.out, "\"state\":\"ALIVE\"") == 2);
    auto one = c.run_cli({"actors", "--json", "--filter", "state=ALIVE", "--limit", "1"});
    CHECK(Cluster::count(one.out, "\"id\":") == 1);
    CHECK_THAT(one.err, Catch::Contains("1 more actors matched and were left out (--limit 1"));
    auto none = c.run_cli({"actors", "--filter", "state!=ALIVE"});
    CHECK_THAT(none.out, Catch::Contains("(no actors match the filters)"));
    auto table = c.run_cli({"actors", "--filter", "state=ALIVE", "--limit", "1"});
    CHECK_THAT(table.out, Catch::Contains("troupe::dp::Replica") && Catch::Contains("1 more actors matched"));
    auto bad = c.run_cli({"actors", "--filter", "colour=red"});
    CHECK(bad.exit_code == 2);
    CHECK_THAT(bad.err, Catch::Contains("actors have no 'colour'") && Catch::Contains("state, class, name"));
    CHECK(c.run_cli({"actors", "--limit", "-3"}).exit_code == 2);
    CHECK(c.run_cli({"nodes", "--filter", "novalue"}).exit_code == 2);
  }
  // The group the replicas all-reduce in, with its rate (workers send
  // their counters every second).
  {
    std::string groups;
    troupe::test::eventually([&] {
      groups = c.run_cli({"groups", "--json"}).out;
      return number(groups, "ops_per_s") > 0;
    });
    CHECK_THAT(groups, Catch::Contains("\"backend\":\"shm\"") && Catch::Contains("\"size\":2") &&
                           Catch::Contains("\"state\":\"ready\""));
    CHECK(number(groups, "bus_bandwidth") > 0);
    CHECK_THAT(c.run_cli({"groups"}).out, Catch::Contains("shm") && Catch::Contains("ready") && Catch::Contains("/s"));
    std::string actors;
    // One call in 8 is timed: on a slow (sanitizer) build that takes a while.
    troupe::test::eventually(
        [&] {
          actors = c.run_cli({"actors", "--json", "--filter", "state=ALIVE"}).out;
          return number(actors, "calls_per_s") > 0 && number(actors, "p99_s") > 0;
        },
        60s);
    CHECK(number(actors, "calls") > 0);
  }
  // Nodes: what the machine and the workers use (sampled every heartbeat).
  {
    std::string nodes;
    troupe::test::eventually([&] {
      nodes = c.run_cli({"nodes", "--json"}).out;
      return number(nodes, "workers") + number(nodes, "workers", nodes.find("\"id\":2")) == 2;
    });
    CHECK(number(nodes, "mem_total") > 0);
    CHECK(number(nodes, "cpu_util") >= 0);
    auto actors = c.run_cli({"actors", "--json", "--filter", "state=ALIVE"}).out;
    CHECK(number(actors, "rss") > 1 << 20);  // a worker holds at least a MiB
    CHECK_THAT(c.run_cli({"nodes", "--filter", "head=true"}).out, Catch::Contains("(head)"));
  }
  // /metrics, checked by a format checker.
  {
    auto answer = troupe::test::http_get(static_cast<std::uint16_t>(c.metrics_port), "/metrics");
    REQUIRE_THAT(answer, Catch::StartsWith("HTTP/1.1 200 OK"));
    auto m = troupe::test::prom_check(answer.substr(answer.find("\r\n\r\n") + 4));
    for (const auto& e : m.errors) UNSCOPED_INFO(e);
    CHECK(m.errors.empty());
    CHECK(m.find("troupe_actors", {{"state", "ALIVE"}}).at(0).value == 2);
    CHECK(m.find("troupe_job_step", {{"name", "observed"}}).at(0).value >= 6);
    CHECK(m.find("troupe_job_running", {{"name", "observed"}}).at(0).value == 1);
    CHECK(m.find("troupe_job_phase_seconds", {{"name", "observed"}, {"phase", "forward"}}).at(0).value > 0);
    CHECK(m.find("troupe_nodes", {{"state", "alive"}}).at(0).value == 2);
    CHECK(m.find("troupe_actor_calls_total").at(0).value > 0);
    CHECK(m.find("troupe_collective_operations_total", {{"group", "dp"}, {"backend", "shm"}}).at(0).value > 0);
    CHECK(m.find("troupe_collective_bytes_total", {{"group", "dp"}}).at(0).value > 0);
  }

  // troupe trace: the driver and both workers in one Chrome trace: the
  // driver's train calls linked to their runs in the workers, the
  // all-reduces on the group's tracks, steps and their phases.
  {
    const auto file = (dir / "trace.json").string();
    // A call is traced when its send falls in the window: 3 s holds whole
    // train calls even on a sanitizer build (a chunk there: near a second).
    auto tr = c.run_cli({"trace", "--seconds", "3", "-o", file, "--json"});
    INFO(tr.out << tr.err);
    REQUIRE(tr.exit_code == 0);
    CHECK(number(tr.out, "processes") == 3);
    CHECK(number(tr.out, "dropped") == 0);
    std::stringstream text;
    text << std::ifstream(file).rdbuf();
    const auto root = troupe::test::parse_json(text.str());
    const auto check = troupe::test::check_chrome(root);
    for (const auto& p : check.problems) UNSCOPED_INFO(p);
    CHECK(check.problems.empty());
    CHECK(check.cross_process_flows >= 2);  // a train call to each replica, at least
    std::map<std::string, int> names;
    std::set<double> pids;
    for (const auto* e : check.events) {
      ++names[e->str("cat") + ":" + e->str("name")];
      pids.insert(e->num("pid"));
    }
    for (const auto& [n, k] : names) UNSCOPED_INFO(n << " x" << k);
    CHECK(pids.size() == 3);
    CHECK(names["call:Replica.train"] >= 2);
    CHECK(names["send:send Replica.train"] >= 2);
    CHECK(names["collective:allreduce"] >= 2);
    CHECK(names["step:step"] >= 2);
    CHECK(names["phase:forward"] >= 2);
    CHECK(names["phase:allreduce wait"] >= 2);
    CHECK_THAT(text.str(), Catch::Contains("\"name\":\"group dp rank 1 (shm)\"") &&
                               Catch::Contains("\"name\":\"driver (pid "));
  }

  // A rank slowed on purpose is named as a straggler (here from chunk
  // reports and live ones alike).
  check_straggler(c, jobs);

  // A trace whose window outlasts the job: the driver and its workers send
  // what they have as they stop, and the command ends with the job.
  const auto late_file = (dir / "late.json").string();
  troupe::test::Child late({bin("troupe"), "trace", "--seconds", "300", "-o", late_file, "--json", "--address",
                            c.address, "--token-file", c.token_file});
  troupe::test::eventually([&] { return late.err().find("recording") != std::string::npos; }, 20s);  // asked
  // The run ends well; its row says so. (Its 400 steps take about a minute
  // here, and four or five under TSan on 2 cores.)
  INFO(run->err());
  REQUIRE(run->wait(troupe::test::sanitized_build() ? 900s : 180s) == 0);
  {
    REQUIRE(late.wait(30s) == 0);
    INFO(late.out() << late.err());
    CHECK(number(late.out(), "processes") == 3);
    CHECK_THAT(late.out(), Catch::Contains("exited before the window ended"));
    std::stringstream text;
    text << std::ifstream(late_file).rdbuf();
    auto check = troupe::test::check_chrome(troupe::test::parse_json(text.str()));
    for (const auto& p : check.problems) UNSCOPED_INFO(p);
    CHECK(check.problems.empty());
    CHECK(check.spans > 0);
  }
  auto done = c.run_cli({"jobs", "--json", "--filter", "name=observed"}).out;
  CHECK_THAT(done, Catch::Contains("\"state\":\"finished\"") && Catch::Contains("\"step\":400"));
  CHECK(number(done, "test_accuracy") > 0.5);
  // Its workers were stopped, not lost: the cluster is healthy.
  auto after = c.run_cli({"status", "--json"});
  INFO(after.out);
  CHECK(after.exit_code == 0);
  CHECK_THAT(after.out, Catch::Contains("\"healthy\":true") && Catch::Contains("\"failures\":[]"));

  // troupe stop: the node daemon and the head exit cleanly, and say so.
  auto stop = c.run_cli({"stop"});
  INFO(stop.out << stop.err);
  CHECK(stop.exit_code == 0);
  CHECK_THAT(stop.out, Catch::Contains("1 node daemon(s)") && Catch::Contains("stopped"));
  CHECK(node->wait(10s) == 0);
  CHECK_THAT(node->out(), Catch::Contains("stopped by the head: troupe stop"));
  CHECK(c.head->wait(10s) == 0);
  CHECK(c.run_cli({"status"}).exit_code == 1);  // nothing answers now
}

TEST_CASE("a rank slowed in the middle of a chunk of 50 steps is named as a straggler within 10 steps",
          "[observe]") {
  Cluster c;
  auto node = c.node();
  const auto dir = c.dir / "job";
  fs::create_directories(dir);
  // Chunks of 50 (the default): the chunk reports come every 1.5 s or so,
  // so naming the rank in time needs the driver's live scoring.
  auto run = start_job(c, dir, "slowed", 50);
  std::string jobs;
  troupe::test::eventually(
      [&] {
        jobs = c.run_cli({"jobs", "--json"}).out;
        return jobs.find("\"state\":\"running\"") != std::string::npos &&
               jobs.find("\"label\":\"replica 1\"") != std::string::npos && number(jobs, "step") >= 4;
      },
      60s);
  INFO(jobs << run->err());
  check_straggler(c, jobs);
}
