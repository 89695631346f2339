// The example driver program, run as a real process on known input.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "tests/support/process.hpp"

using troupe::test::bin;
using troupe::test::run_process;

TEST_CASE("wordcount counts words across a mesh of mappers", "[example]") {
  auto dir = std::filesystem::temp_directory_path() / ("troupe-wc-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto a = dir / "a.txt", b = dir / "b.txt";
  {
    std::ofstream(a) << "apple banana apple\ncherry Apple";
    std::string big;
    for (int i = 0; i < 30000; ++i) big += "banana kiwi ";  // several 64 KiB chunks
    std::ofstream(b) << big;
  }
  auto r = run_process({bin("wordcount"), "--top", "3", "--mappers", "3", a.string(), b.string()});
  std::filesystem::remove_all(dir);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("30001  banana"));
  CHECK_THAT(r.out, Catch::Contains("30000  kiwi"));
  CHECK_THAT(r.out, Catch::Contains("3  apple"));
  CHECK_THAT(r.out, Catch::Contains("over 3 mappers"));
  CHECK_THAT(r.out, Catch::Contains("single-threaded count: ok"));
}

TEST_CASE("wordcount reports a missing file and fails", "[example]") {
  auto r = run_process({bin("wordcount"), "/nonexistent/troupe-input.txt"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("cannot read '/nonexistent/troupe-input.txt'"));
}

TEST_CASE("the C++ data-parallel example trains on Fashion-MNIST with two worker processes", "[example][dp]") {
  auto dir = std::filesystem::temp_directory_path() / ("troupe-dp-example-" + std::to_string(::getpid()));
  auto r = run_process({bin("fashion_mnist_dp"), "--epochs", "1", "--checkpoints", dir.string()}, std::chrono::seconds(300));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("step 468/468") && Catch::Contains("test accuracy 0.8"));
  CHECK_THAT(r.out, Catch::Contains("done: 468 steps, test accuracy 0.8"));
  CHECK(std::filesystem::exists(dir / "latest.troupeck"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("the C++ 3-D example builds a 2 x 2 x 2 mesh by hand and trains on it", "[example][tp]") {
  auto r = run_process({bin("mesh_3d"), "--steps", "100"}, std::chrono::seconds(300));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  // Every (replica, stage, tp rank) holds its part: the tp ranks of a stage about half of it each.
  CHECK_THAT(r.out, Catch::Contains("replica 1 stage 1 tp rank 1: 1054730 parameters"));
  // The loss falls from ln(10) = 2.30 well below 1 within 100 steps.
  const auto at = r.out.find("step 100  loss ");
  REQUIRE(at != std::string::npos);
  const auto running = r.out.find("running ", at);
  REQUIRE(running != std::string::npos);
  CHECK(std::stod(r.out.substr(running + 8)) < 1.0);
}
