#pragma once
// For the integration suites that watch a cluster with a job on it
// (observe_itest, ops_itest): a training job started with `troupe run`,
// numbers read out of the CLI's JSON, and whether a tool is installed.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/child.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/process.hpp"

namespace troupe::test {

// The first `"key":NUMBER` in a JSON text (-1 if none).
inline double number(const std::string& json, const std::string& key, std::size_t from = 0) {
  std::smatch m;
  const std::regex re("\"" + key + "\":(-?[0-9.eE+-]+)");
  std::string tail = json.substr(std::min(from, json.size()));
  return std::regex_search(tail, m, re) ? std::stod(m[1]) : -1;
}

// Whether `argv` runs and exits 0 (false too when the program is not installed).
inline bool runs(const std::vector<std::string>& argv) {
  try {
    return run_process(argv, std::chrono::seconds(10)).exit_code == 0;
  } catch (const std::exception&) {
    return false;  // not found: posix_spawnp refused it
  }
}

// `troupe run` of a data-parallel job (2 replicas, steps of some 30 ms: two
// 1024-wide layers; 400 steps, reported every 2, or every `chunk_steps`)
// named `name`, in `dir`.
inline std::unique_ptr<Child> start_job(const TestCluster& c, const std::filesystem::path& dir,
                                        const std::string& name, int chunk_steps = 2) {
  const auto toml = (dir / (name + ".toml")).string();
  {
    std::ofstream f(toml);
    f << "name = \"" << name << "\"\n[model]\nhidden = [1024, 1024]\n[data]\ntrain_limit = 51200\neval_limit = 500\n"
      << "[train]\nstrategy = \"data_parallel\"\nreplicas = 2\nbatch = 64\nepochs = 1\nchunk_steps = " << chunk_steps
      << "\n"
      << "[optimizer]\nlr = 0.05\n[output]\ndir = \"" << (dir / "out").string() << "\"\nplot = \"none\"\n";
  }
  return std::make_unique<Child>(std::vector<std::string>{
      bin("troupe"), "run", toml, "--address", c.address, "--token-file", c.token_file, "--quiet"});
}

}  // namespace troupe::test
