#include "tests/support/cluster.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace troupe::test {

bool sanitized_build() {
#ifdef TROUPE_TEST_SANITIZED
  return true;
#else
  return false;
#endif
}

namespace {
// Fast heartbeats so failures show quickly; under a sanitizer a loaded
// 2-core machine can starve a daemon past 600 ms, so the timeout is longer.
const std::string kNodeTimeoutMs = sanitized_build() ? "2000" : "600";
}  // namespace

TestCluster::TestCluster(const std::string& head_resources) : TestCluster({}, "127.0.0.1", head_resources) {}

TestCluster::TestCluster(std::vector<std::string> wrap, const std::string& bind, const std::string& head_resources) {
  std::random_device rd;
  dir = std::filesystem::temp_directory_path() /
        ("troupe-cluster-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
  std::filesystem::create_directories(dir);
  token_file = (dir / "cluster.token").string();
  std::vector<std::string> argv = wrap;
  for (std::string a : {bin("troupe-daemon"), std::string("--head"), std::string("--port"), std::string("0"),
                        std::string("--bind"), bind, std::string("--token-file"), token_file,
                        std::string("--heartbeat-ms"), std::string("100"), std::string("--node-timeout-ms"),
                        kNodeTimeoutMs, std::string("--metrics-port"), std::string("0")})
    argv.push_back(a);
  if (!head_resources.empty()) {
    argv.push_back("--resources");
    argv.push_back(head_resources);
  }
  head = std::make_unique<Child>(argv);
  auto line = head->wait_for_line("listening on");
  if (line.empty()) throw std::runtime_error("the head did not start: " + head->err());
  auto at = line.find(bind + ":");
  address = line.substr(at, line.find(' ', at) - at);
  auto metrics = head->wait_for_line("/metrics");
  if (auto colon = metrics.rfind(':'); colon != std::string::npos) metrics_port = std::atoi(metrics.c_str() + colon + 1);
  std::ifstream in(token_file);
  std::getline(in, token);
}

TestCluster::~TestCluster() {
  head.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

std::unique_ptr<Child> TestCluster::node(const std::string& resources, std::vector<std::string> wrap) {
  std::vector<std::string> argv = std::move(wrap);
  for (std::string a : {bin("troupe-daemon"), std::string("--address"), address, std::string("--token-file"),
                        token_file, std::string("--heartbeat-ms"), std::string("100"),
                        std::string("--node-timeout-ms"), kNodeTimeoutMs})
    argv.push_back(a);
  if (!resources.empty()) {
    argv.push_back("--resources");
    argv.push_back(resources);
  }
  auto c = std::make_unique<Child>(argv);
  if (c->wait_for_line("joined the head").empty()) throw std::runtime_error("a node did not join: " + c->err());
  return c;
}

ProcessResult TestCluster::cli(const std::string& cmd, bool json) {
  std::vector<std::string> argv{bin("troupe"), cmd, "--address", address, "--token-file", token_file};
  if (json) argv.push_back("--json");
  return run_process(argv, std::chrono::seconds(20));
}

ProcessResult TestCluster::run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), bin("troupe"));
  for (std::string a : {std::string("--address"), address, std::string("--token-file"), token_file}) args.push_back(a);
  return run_process(args, std::chrono::seconds(20));
}

int TestCluster::count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

void TestCluster::sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace troupe::test
