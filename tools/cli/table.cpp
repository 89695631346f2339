#include "tools/cli/table.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "runtime/errors.hpp"

namespace troupe::cli {

ListFlags parse_flags(int argc, char** argv, bool lists) {
  ListFlags f;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(fmt::format("{} needs a value", a));
      return argv[++i];
    };
    if (a == "--address") f.address = value();
    else if (a == "--token") f.token = value();
    else if (a == "--token-file") f.token_file = value();
    else if (a == "--json") f.json = true;
    else if (lists && a == "--filter") {
      const std::string v = value();
      const auto ne = v.find("!="), eq = v.find('=');
      Filter flt;
      if (ne != std::string::npos && ne < eq) flt = {v.substr(0, ne), v.substr(ne + 2), true};
      else if (eq != std::string::npos) flt = {v.substr(0, eq), v.substr(eq + 1), false};
      if (flt.key.empty())
        throw UsageError(fmt::format("--filter wants KEY=VALUE or KEY!=VALUE, got '{}'", v));
      f.filters.push_back(std::move(flt));
    } else if (lists && a == "--limit") {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || n < 0 || n > 1000000)
        throw UsageError(fmt::format("--limit wants a number of rows from 0 (all) to 1000000, got '{}'", v));
      f.limit = static_cast<std::size_t>(n);
      f.limit_given = true;
    } else {
      throw UsageError(fmt::format("unknown option '{}'", a));
    }
  }
  return f;
}

namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

std::vector<const Row*> filtered(const std::vector<Column>& cols, const std::vector<Row>& rows,
                                 const std::vector<Filter>& filters, const std::string& what) {
  std::vector<std::size_t> at;
  for (const auto& flt : filters) {
    // The key, or the column's title as shown ("calls/s" for calls_per_s).
    auto it = std::find_if(cols.begin(), cols.end(),
                           [&](const Column& c) { return c.key == lower(flt.key) || lower(c.title) == lower(flt.key); });
    if (it == cols.end()) {
      std::string keys;
      for (const auto& c : cols) keys += (keys.empty() ? "" : ", ") + c.key;
      throw UsageError(fmt::format("--filter {}: {} have no '{}'; filter on one of: {}", flt.key, what, flt.key, keys));
    }
    at.push_back(static_cast<std::size_t>(it - cols.begin()));
  }
  std::vector<const Row*> out;
  for (const auto& r : rows) {
    bool keep = true;
    for (std::size_t k = 0; k < filters.size() && keep; ++k)
      keep = (lower(r.raw.at(at[k])) == lower(filters[k].value)) != filters[k].negate;
    if (keep) out.push_back(&r);
  }
  return out;
}

std::vector<std::string> render(const std::vector<Column>& cols, const std::vector<const Row*>& rows,
                                std::size_t max_width) {
  std::vector<std::size_t> width(cols.size());
  std::size_t last = 0;
  for (std::size_t c = 0; c < cols.size(); ++c) {
    if (cols[c].title.empty()) continue;
    last = c;
    width[c] = cols[c].width ? static_cast<std::size_t>(cols[c].width) : cols[c].title.size();
    if (!cols[c].width)
      for (const auto* r : rows) width[c] = std::max(width[c], r->cells[c].size());
  }
  std::vector<std::string> out;
  auto line = [&](auto cell) {
    std::string l;
    for (std::size_t c = 0; c < cols.size(); ++c) {
      if (cols[c].title.empty()) continue;
      const std::string v = cell(c);
      if (!l.empty()) l += "  ";
      if (c == last) l += v;
      else l += cols[c].right ? fmt::format("{:>{}}", v, width[c]) : fmt::format("{:<{}}", v, width[c]);
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    if (max_width && l.size() > max_width) l.resize(max_width);
    out.push_back(std::move(l));
  };
  line([&](std::size_t c) { return cols[c].title; });
  for (const auto* r : rows) line([&](std::size_t c) { return r->cells[c]; });
  return out;
}

void print_rows(const std::vector<Column>& cols, const std::vector<Row>& rows, const ListFlags& f,
                const std::string& what) {
  auto kept = filtered(cols, rows, f.filters, what);
  const std::size_t matched = kept.size();
  if (f.limit && kept.size() > f.limit) kept.resize(f.limit);
  const std::size_t left_out = matched - kept.size();
  const std::string note =
      left_out ? fmt::format("{} more {} matched and were left out (--limit {}; --limit 0 shows all)", left_out, what,
                             f.limit)
               : std::string();
  if (f.json) {
    std::string out = "[";
    for (std::size_t i = 0; i < kept.size(); ++i) out += (i ? "," : "") + kept[i]->json;
    fmt::print("{}]\n", out);
    if (!note.empty()) fmt::print(stderr, "troupe: {}\n", note);
    return;
  }
  for (const auto& l : render(cols, kept)) fmt::print("{}\n", l);
  if (kept.empty()) fmt::print("(no {}{})\n", what, f.filters.empty() ? "" : " match the filters");
  if (!note.empty()) fmt::print("{}\n", note);
}

std::string json_resources(const cluster::ResourceMap& r) {
  std::string out = "{";
  for (const auto& [k, v] : r) out += fmt::format("{}{}:{}", out.size() > 1 ? "," : "", json_string(k), json_number(v));
  return out + "}";
}

std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += " | ";
    } else if (c == '\r' || c == '\t') {
      out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '|')) out.pop_back();
  return out;
}

std::string amount(const std::string& name, double v) {
  if (name == "memory") return fmt::format("{:.1f}GiB", v / double(1ull << 30));
  return fmt::format("{}", v);
}

std::string bytes(std::uint64_t b) {
  if (b == 0) return "-";
  const double v = static_cast<double>(b);
  if (v >= double(1ull << 30)) return fmt::format("{:.1f}GiB", v / double(1ull << 30));
  if (v >= double(1ull << 20)) return fmt::format("{:.0f}MiB", v / double(1ull << 20));
  return fmt::format("{:.0f}KiB", v / 1024.0);
}

std::string duration(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  if (s < 60) return fmt::format("{:.1f}s", s);
  const auto t = static_cast<long>(s);
  if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
  return fmt::format("{}h{:02}m", t / 3600, (t % 3600) / 60);
}

std::string ago(std::uint64_t ms) { return duration(static_cast<double>(ms) / 1000.0) + " ago"; }

}  // namespace troupe::cli
