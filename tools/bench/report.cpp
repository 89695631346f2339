#include "tools/bench/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace troupe::bench {

namespace {
std::string cell(const Value& v) {
  if (auto* s = std::get_if<std::string>(&v)) return *s;
  if (auto* i = std::get_if<std::int64_t>(&v)) return fmt::format("{}", *i);
  double d = std::get<double>(v);
  if (std::fabs(d) >= 1000) return fmt::format("{:.0f}", d);
  if (std::fabs(d) < 1 && d != 0) return fmt::format("{:.4f}", d);  // accuracies, ratios
  return fmt::format("{:.2f}", d);
}
std::string json_value(const Value& v) {
  if (auto* s = std::get_if<std::string>(&v)) return fmt::format("\"{}\"", *s);
  if (auto* i = std::get_if<std::int64_t>(&v)) return fmt::format("{}", *i);
  double d = std::get<double>(v);
  if (!std::isfinite(d)) return "null";
  return fmt::format("{:.6g}", d);
}
}  // namespace

void print_table(const Report& r) {
  if (r.rows.empty()) {
    fmt::print("{}: no rows\n", r.suite);
  } else {
    const auto& head = r.rows.front().fields;
    std::vector<std::size_t> width(head.size());
    for (std::size_t c = 0; c < head.size(); ++c) width[c] = head[c].first.size();
    for (auto& row : r.rows)
      for (std::size_t c = 0; c < row.fields.size() && c < width.size(); ++c)
        width[c] = std::max(width[c], cell(row.fields[c].second).size());
    std::string line;
    for (std::size_t c = 0; c < head.size(); ++c) line += fmt::format("{:<{}}  ", head[c].first, width[c]);
    fmt::print("{}\n", line);
    std::size_t total = 0;
    for (auto w : width) total += w + 2;
    fmt::print("{}\n", std::string(total, '-'));
    for (auto& row : r.rows) {
      line.clear();
      for (std::size_t c = 0; c < row.fields.size() && c < width.size(); ++c) {
        auto text = cell(row.fields[c].second);
        bool numeric = !std::holds_alternative<std::string>(row.fields[c].second);
        line += numeric ? fmt::format("{:>{}}  ", text, width[c]) : fmt::format("{:<{}}  ", text, width[c]);
      }
      fmt::print("{}\n", line);
    }
  }
  for (auto& n : r.notes) fmt::print("note: {}\n", n);
}

void print_json(const Report& r) {
  std::string out = fmt::format("{{\"suite\":\"{}\",\"rows\":[", r.suite);
  for (std::size_t i = 0; i < r.rows.size(); ++i) {
    out += i ? ",{" : "{";
    const auto& f = r.rows[i].fields;
    for (std::size_t c = 0; c < f.size(); ++c)
      out += fmt::format("{}\"{}\":{}", c ? "," : "", f[c].first, json_value(f[c].second));
    out += "}";
  }
  out += "]}";
  fmt::print("{}\n", out);
}

double percentile(std::vector<double> samples, double pct) {
  if (samples.empty()) return 0;
  std::size_t k = static_cast<std::size_t>(std::ceil(pct / 100.0 * samples.size()));
  k = std::clamp<std::size_t>(k, 1, samples.size()) - 1;
  std::nth_element(samples.begin(), samples.begin() + k, samples.end());
  return samples[k];
}

Row make_row(const std::string& system, const std::string& pattern, const Measured& m) {
  Row row;
  row.set("system", system).set("pattern", pattern).set("calls_per_s", m.calls_per_s);
  row.set("p50_us", m.p50_us).set("p99_us", m.p99_us);
  return row;
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  return out;
}

std::string peer_python() {
  const char* env = std::getenv("TROUPE_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}

std::string bench_script(const std::string& name) {
  const char* env = std::getenv("TROUPE_SOURCE_DIR");
  return std::string(env && *env ? env : TROUPE_SOURCE_DIR) + "/tools/bench/" + name;
}

}  // namespace troupe::bench
