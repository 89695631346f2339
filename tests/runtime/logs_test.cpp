// A worker's captured output: capped files that rotate, and their tails.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/cluster/logs.hpp"

namespace fs = std::filesystem;
using namespace troupe::cluster;

TEST_CASE("a worker's output fills capped files: past the cap the file moves to .old", "[logs]") {
  const auto dir = fs::temp_directory_path() / ("troupe-logs-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  int out[2], err[2];
  REQUIRE(::pipe(out) == 0);
  REQUIRE(::pipe(err) == 0);
  {
    LogPump pump({dir.string(), 4096}, 7, 1234, out[0], err[0]);
    const std::string line(99, 'x');
    for (int i = 0; i < 100; ++i) REQUIRE(::write(out[1], (line + "\n").data(), 100) == 100);
    REQUIRE(::write(err[1], "oops\n", 5) == 5);
    ::close(out[1]);
    ::close(err[1]);
  }  // the pump ends when both pipes close
  const auto file = log_path(dir.string(), 7, false);
  REQUIRE(fs::exists(file));
  REQUIRE(fs::exists(file + ".old"));
  CHECK(fs::file_size(file) <= 4096);
  CHECK(fs::file_size(file + ".old") <= 4096);
  CHECK(tail_of(file, 1) == std::string(99, 'x') + "\n");
  CHECK(tail_of(file, 3).size() == 300);
  const auto errs = tail_of(log_path(dir.string(), 7, true), 0);
  CHECK_THAT(errs, Catch::StartsWith("--- troupe: worker process 1234 for actor 7 started") && Catch::EndsWith("oops\n"));
  CHECK(tail_of(log_path(dir.string(), 8, false), 5).empty());  // no such file
  CHECK_THAT(list_logs(dir.string()), Catch::Contains("actor-7.out") && Catch::Contains("actor-7.err"));
  fs::remove_all(dir);
}
