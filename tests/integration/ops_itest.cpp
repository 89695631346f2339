// The operator's side of a cluster, as real processes: GPU figures from
// NVML (a stand-in library), `troupe top` driven in a terminal (tmux), and
// the Slurm batch script (where a Slurm controller answers).
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "tests/support/cluster.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http.hpp"
#include "tests/support/observe_job.hpp"
#include "tests/support/prom_check.hpp"

using namespace std::chrono_literals;
using troupe::test::bin;
using troupe::test::runs;
using troupe::test::start_job;
using Cluster = troupe::test::TestCluster;
namespace fs = std::filesystem;

TEST_CASE("GPU figures per node and per worker come from NVML (a stand-in library here)", "[observe][nvml]") {
  // The daemons load support/fake_nvml.cpp as libnvidia-ml.so.1, as they
  // would the driver's: two GPUs (75% and 20% busy, 10 and 20 of 80 GiB),
  // and each of the daemon's workers using 3 GiB of GPU 0.
  const std::vector<std::string> env = {"/usr/bin/env", std::string("LD_LIBRARY_PATH=") + TROUPE_FAKE_NVML_DIR};
  Cluster c(env, "127.0.0.1");
  auto node = c.node("", env);
  std::string nodes;
  troupe::test::eventually([&] {
    nodes = c.run_cli({"nodes", "--json"}).out;
    return Cluster::count(nodes, "\"util\":0.75") == 2;  // the head's node and the other
  });
  INFO(nodes);
  CHECK(Cluster::count(nodes, "{\"index\":1,\"util\":0.2,\"mem_used\":21474836480,\"mem_total\":85899345920}") == 2);
  CHECK_THAT(c.run_cli({"nodes"}).out, Catch::Contains("0:75%/10.0GiB 1:20%/20.0GiB"));

  const auto dir = c.dir / "gpu-job";
  fs::create_directories(dir);
  auto run = start_job(c, dir, "gpu-figures");
  // Each replica's worker, wherever it was placed, with the GPU memory NVML
  // counts for its pid.
  std::string actors;
  troupe::test::eventually(
      [&] {
        actors = c.run_cli({"actors", "--json", "--filter", "state=ALIVE"}).out;
        return Cluster::count(actors, "\"gpu_mem\":3221225472") == 2;
      },
      60s);
  INFO(actors << run->err());
  CHECK(Cluster::count(actors, "\"state\":\"ALIVE\"") == 2);
  CHECK_THAT(c.run_cli({"actors", "--filter", "state=ALIVE"}).out, Catch::Contains("3.0GiB"));
  auto answer = troupe::test::http_get(static_cast<std::uint16_t>(c.metrics_port), "/metrics");
  auto m = troupe::test::prom_check(answer.substr(answer.find("\r\n\r\n") + 4));
  for (const auto& e : m.errors) UNSCOPED_INFO(e);
  CHECK(m.errors.empty());
  const auto util = m.find("troupe_gpu_utilization_ratio", {{"gpu", "0"}});
  REQUIRE(util.size() == 2);
  CHECK(util[0].value == 0.75);
  CHECK(m.find("troupe_gpu_memory_total_bytes", {{"gpu", "1"}}).at(0).value == 85899345920.0);
  run->signal(SIGKILL);
  run->wait(10s);
}

TEST_CASE("troupe top in a terminal (tmux): panes, filter, sort, q quits; one frame when piped", "[observe][top]") {
  Cluster c;
  auto node = c.node("ssd=1");
  // Not a terminal: one frame of every pane, then exit 0.
  auto once = c.run_cli({"top"});
  REQUIRE(once.exit_code == 0);
  CHECK_THAT(once.out, Catch::StartsWith("troupe top  " + c.address) && Catch::Contains("\nnodes\nID") &&
                           Catch::Contains("\nactors\nID") && Catch::Contains("\ngroups\nNAME") &&
                           Catch::Contains("\njobs\nID"));
  CHECK(c.run_cli({"top", "--pane", "gpus"}).exit_code == 2);
  CHECK(c.run_cli({"top", "--interval", "0"}).exit_code == 2);
  if (!runs({"tmux", "-V"})) {
    WARN("tmux is not installed: the interactive part of troupe top is not checked");
    return;
  }
  const std::string sock = "troupe-top-" + std::to_string(::getpid());
  auto tmux = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"tmux", "-L", sock});
    return troupe::test::run_process(args, 10s);
  };
  const std::string cmd = bin("troupe") + " top --interval 0.2 --address " + c.address + " --token-file " + c.token_file;
  REQUIRE(tmux({"new-session", "-d", "-s", "top", "-x", "160", "-y", "30", cmd}).exit_code == 0);
  struct Kill {
    std::function<void()> fn;
    ~Kill() { fn(); }
  } cleanup{[&] { tmux({"kill-server"}); }};
  std::string screen;
  auto shows = [&](const std::vector<std::string>& all) {
    return troupe::test::wait_until([&] {
      screen = tmux({"capture-pane", "-p", "-t", "top"}).out;
      for (const auto& s : all)
        if (screen.find(s) == std::string::npos) return false;
      return true;
    }, 10s, 20ms);
  };
  INFO(screen);
  REQUIRE(shows({"troupe top  " + c.address, "[1 nodes]", "HOSTNAME", "ssd=1", "healthy"}));
  tmux({"send-keys", "-t", "top", "2"});
  CHECK(shows({"[2 actors]", "CLASS", "(no actors)"}));
  tmux({"send-keys", "-t", "top", "4"});
  CHECK(shows({"[4 jobs]", "STRAGGLERS"}));
  tmux({"send-keys", "-t", "top", "1"});
  CHECK(shows({"[1 nodes]"}));
  // Filter on text in a row: only the head's node row stays.
  tmux({"send-keys", "-t", "top", "/", "(", "h", "e", "a", "d", ")", "Enter"});
  CHECK(shows({"filter: (head)"}));
  CHECK(Cluster::count(screen, "ALIVE") == 1);
  tmux({"send-keys", "-t", "top", "s"});
  CHECK(shows({"sort: STATE"}));
  tmux({"send-keys", "-t", "top", "r"});
  CHECK(shows({"sort: STATE (desc)"}));
  tmux({"send-keys", "-t", "top", "q"});
  CHECK(troupe::test::wait_until([&] { return tmux({"has-session", "-t", "top"}).exit_code != 0; }, 10s, 20ms));
  // --pane with a pipe: that pane only.
  auto jobs_only = c.run_cli({"top", "--pane", "jobs"});
  CHECK_THAT(jobs_only.out, Catch::Contains("\njobs\n") && !Catch::Contains("\nnodes\n"));
  // A daemon stopped on purpose leaves; that is no failure.
  node->signal(SIGTERM);
  CHECK(node->wait(10s) == 0);
  troupe::test::eventually([&] {
    return c.run_cli({"nodes", "--json"}).out.find("stopped: its daemon was stopped") != std::string::npos;
  });
  CHECK(c.run_cli({"status"}).exit_code == 0);
}

TEST_CASE("the sbatch script runs a topology on a Slurm allocation and stops its cluster", "[slurm]") {
  // Only where a Slurm controller answers (Debian's slurm-wlm, one node, is
  // enough); the suite does not install Slurm.
  if (!runs({"sinfo", "-h"})) {
    WARN("no Slurm controller answers (sinfo): deploy/slurm/troupe.sbatch is not run");
    return;
  }
  const auto dir = fs::temp_directory_path() / ("troupe-slurm-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto toml = (dir / "tiny.toml").string();
  {
    std::ofstream f(toml);
    f << "name = \"slurm_tiny\"\n[model]\nhidden = [64]\n[data]\ntrain_limit = 4096\neval_limit = 1000\n"
         "[train]\nstrategy = \"data_parallel\"\nreplicas = 2\nbatch = 64\nepochs = 1\nchunk_steps = 8\n"
         "[optimizer]\nlr = 0.05\n[output]\ndir = \""
      << (dir / "out").string() << "\"\nplot = \"none\"\n";
  }
  const auto bin_dir = fs::path(bin("troupe")).parent_path().string();
  const auto script = fs::path(TROUPE_SOURCE_DIR) / "deploy" / "slurm" / "troupe.sbatch";
  auto r = troupe::test::run_process({"sbatch", "--wait", "--nodes=1", "-o", (dir / "job.out").string(), script.string(),
                                      toml, "--quiet"},
                                     300s, {"TROUPE_BIN=" + bin_dir, "TROUPE_PORT=0", "TROUPE_METRICS_PORT=",
                                            "TROUPE_RUN_DIR=" + (dir / "run").string()});
  std::ifstream in(dir / "job.out");
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  INFO(r.out << r.err << out);
  CHECK(r.exit_code == 0);
  CHECK_THAT(out, Catch::Contains("steps 32") && Catch::Contains("test accuracy 0."));
  // Nothing of the cluster is left: the head was stopped with the job.
  CHECK_FALSE(runs({"pgrep", "-f", "troupe-daemon --head --bind 0.0.0.0"}));
  fs::remove_all(dir);
}
