// The command-line programs, run as real processes.
#include <catch2/catch.hpp>

#include "tests/support/process.hpp"

using troupe::test::bin;
using troupe::test::run_process;

TEST_CASE("troupe version and info describe the build", "[cli]") {
  auto v = run_process({bin("troupe"), "version"});
  CHECK(v.exit_code == 0);
  CHECK_THAT(v.out, Catch::StartsWith("troupe ") && Catch::Contains("CUDA:"));
  auto info = run_process({bin("troupe"), "info"});
  CHECK(info.exit_code == 0);
  CHECK_THAT(info.out, Catch::Contains("cpu threads") && Catch::Contains("gpus"));
}

TEST_CASE("troupe refuses an unknown command with usage and exit 2", "[cli]") {
  auto r = run_process({bin("troupe"), "frobnicate"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown command 'frobnicate'") && Catch::Contains("usage"));
  CHECK(run_process({bin("troupe")}).exit_code == 2);
}

TEST_CASE("troupe-bench actors --json prints one line with both systems", "[cli][bench]") {
  auto r = run_process({bin("troupe-bench"), "actors", "--json", "--sync-calls", "500", "--async-calls", "5000",
                        "--batch", "500"},
                       std::chrono::seconds(120));
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("{\"suite\":\"actors\",\"rows\":["));
  for (const char* p : {"sync_1to1", "async_1to1", "async_nton", "sync_1k_arg"})
    CHECK_THAT(r.out, Catch::Contains(std::string("\"system\":\"troupe\",\"pattern\":\"") + p + "\""));
  // CAF is a peer that may be absent; when present its rows are there too.
  if (r.out.find("\"caf\"") != std::string::npos)
    CHECK_THAT(r.out, Catch::Contains("\"system\":\"caf\",\"pattern\":\"sync_1to1\""));
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
}

TEST_CASE("troupe-bench rejects bad options", "[cli][bench]") {
  auto r = run_process({bin("troupe-bench"), "actors", "--sync-calls", "-5"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--sync-calls needs a positive integer"));
  CHECK(run_process({bin("troupe-bench"), "nosuchsuite"}).exit_code == 2);
}

TEST_CASE("troupe-daemon without a role prints usage and exits 2", "[cli]") {
  auto r = run_process({bin("troupe-daemon"), "--frobnicate"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown option '--frobnicate'") && Catch::Contains("usage"));
}
