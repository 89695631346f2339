#pragma once
// A head daemon and node daemons as real processes on loopback, plus the CLI
// pointed at them: the fixture the cluster integration suites share.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/child.hpp"
#include "tests/support/process.hpp"

namespace troupe::test {

/// Whether this is an ASan or TSan build, where training runs several times slower.
bool sanitized_build();

struct TestCluster {
  std::filesystem::path dir;
  std::string token_file, token, address;
  int metrics_port = 0;  ///< the head's /metrics (it is started with --metrics-port 0)
  std::unique_ptr<Child> head;

  /// Starts `troupe-daemon --head` (fast heartbeats: 100 ms, timeout 600 ms; 2 s under a sanitizer).
  explicit TestCluster(const std::string& head_resources = "");
  /// The head runs under `wrap` (e.g. ip netns exec NS) and binds `bind`.
  TestCluster(std::vector<std::string> wrap, const std::string& bind, const std::string& head_resources = "");
  ~TestCluster();
  /// Starts a node daemon (under `wrap`, if given) and waits until it has joined.
  std::unique_ptr<Child> node(const std::string& resources = "", std::vector<std::string> wrap = {});
  ProcessResult cli(const std::string& cmd, bool json = true);
  /// `troupe ARGS... --address A --token-file F`.
  ProcessResult run_cli(std::vector<std::string> args);
  /// Polls `troupe CMD --json` until `pred(output)` or the limit; returns the last output.
  template <class F>
  std::string poll(const std::string& cmd, F pred, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    std::string out;
    while (std::chrono::steady_clock::now() < deadline) {
      out = cli(cmd).out;
      if (pred(out)) return out;
      sleep_ms(50);
    }
    return out;
  }
  static int count(const std::string& text, const std::string& needle);
  static void sleep_ms(int ms);
};

}  // namespace troupe::test
