#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "trainers/metrics.hpp"

using troupe::dp::axis_ticks;

TEST_CASE("axis ticks are round, distinct and cover the range", "[metrics]") {
  CHECK(axis_ticks(0, 468, 5, 1) == std::vector<double>{0, 100, 200, 300, 400, 500});
  CHECK_THAT(axis_ticks(0.31, 0.87), Catch::Approx(std::vector<double>{0.2, 0.4, 0.6, 0.8, 1.0}));
  // One evaluation: ticks around it, whole steps, each label different.
  auto one = axis_ticks(468, 468, 5, 1);
  CHECK(one == std::vector<double>{467, 468, 469});
  auto acc = axis_ticks(0.8951, 0.8951);
  REQUIRE(acc.size() >= 2);
  CHECK(acc.front() < 0.8951);
  CHECK(acc.back() > 0.8951);
  for (auto [lo, hi] : {std::pair{1.0, 1.0}, std::pair{0.0, 1e-7}, std::pair{-3.0, 7.0}, std::pair{1e6, 1e6 + 3}}) {
    auto t = axis_ticks(lo, hi, 5, 0);
    INFO(lo << ".." << hi);
    CHECK(t.size() >= 2);
    CHECK(t.size() <= 12);
    CHECK(t.front() <= lo);
    CHECK(t.back() >= hi);
    CHECK(std::set<double>(t.begin(), t.end()).size() == t.size());
  }
}

TEST_CASE("a plot with one evaluation labels its axes with distinct values", "[metrics]") {
  auto path = std::filesystem::temp_directory_path() / ("troupe-plot-" + std::to_string(::getpid()) + ".svg");
  troupe::dp::PlotSeries s;
  s.loss = {{50, 0.9}, {100, 0.6}, {468, 0.41}};
  s.accuracy = {{468, 0.8951}};
  troupe::dp::write_svg_plot(path.string(), "one epoch", s);
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  std::filesystem::remove(path);
  // The accuracy panel's x labels (text-anchor middle, below the panel at y=314).
  std::regex label(R"re(<text x="([0-9.]+)" y="314" font-size="10" text-anchor="middle" font-family="sans-serif">([^<]*)</text>)re");
  std::vector<std::string> right;
  const std::string svg = text.str();
  for (std::sregex_iterator it(svg.begin(), svg.end(), label), end; it != end; ++it)
    if (std::stod((*it)[1]) > 500) right.push_back((*it)[2]);
  CHECK(right == std::vector<std::string>{"467", "468", "469"});
}
