#pragma once
// A checker for Prometheus's text exposition format (version 0.0.4), as the
// tests read the head's /metrics: every sample line is NAME{LABELS} VALUE,
// names and label names are legal, label values escaped, values numbers,
// every sampled metric has a TYPE line before it (once), counters end in
// _total, and no series repeats.
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace troupe::test {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct PromCheck {
  std::vector<std::string> errors;
  std::vector<PromSample> samples;
  std::map<std::string, std::string> types;  // metric -> counter / gauge / ...

  /// The samples of `name` whose labels include every one of `want`.
  std::vector<PromSample> find(const std::string& name, const std::map<std::string, std::string>& want = {}) const {
    std::vector<PromSample> out;
    for (const auto& s : samples) {
      if (s.name != name) continue;
      bool ok = true;
      for (const auto& [k, v] : want) {
        auto it = s.labels.find(k);
        ok = ok && it != s.labels.end() && it->second == v;
      }
      if (ok) out.push_back(s);
    }
    return out;
  }
};

inline bool prom_name_ok(const std::string& n, bool label) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!label && c == ':');
    if (!(alpha || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}

inline PromCheck prom_check(const std::string& text) {
  PromCheck out;
  std::set<std::string> series;
  std::set<std::string> families_done;  // families whose block has ended
  std::string current;                  // the family the last sample belonged to
  std::size_t pos = 0, lineno = 0;
  auto err = [&](const std::string& why, const std::string& line) {
    out.errors.push_back("line " + std::to_string(lineno) + ": " + why + ": " + line);
  };
  if (!text.empty() && text.back() != '\n') out.errors.push_back("the text does not end with a newline");
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (line.rfind("# TYPE ", 0) == 0) {
        const auto rest = line.substr(7);
        const auto sp = rest.find(' ');
        const auto name = rest.substr(0, sp), type = sp == std::string::npos ? "" : rest.substr(sp + 1);
        if (!prom_name_ok(name, false)) err("bad metric name in TYPE", line);
        if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" && type != "untyped")
          err("unknown type", line);
        if (out.types.count(name)) err("second TYPE line for one metric", line);
        if (type == "counter" && name.size() < 6) err("a counter's name must end in _total", line);
        if (type == "counter" && name.compare(name.size() - 6, 6, "_total") != 0)
          err("a counter's name must end in _total", line);
        out.types[name] = type;
      }
      continue;
    }
    PromSample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!prom_name_ok(s.name, false)) {
      err("bad metric name", line);
      continue;
    }
    if (!out.types.count(s.name)) err("a sample before its TYPE line", line);
    if (s.name != current) {
      if (!current.empty()) families_done.insert(current);
      if (families_done.count(s.name)) err("a family's samples are not in one block", line);
      current = s.name;
    }
    std::string key = s.name + "{";
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const auto eq = line.find('=', i);
        if (eq == std::string::npos) break;
        const std::string lname = line.substr(i, eq - i);
        if (!prom_name_ok(lname, true)) err("bad label name '" + lname + "'", line);
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') {
          err("a label value without quotes", line);
          break;
        }
        ++i;
        std::string v;
        bool closed = false;
        while (i < line.size()) {
          const char c = line[i++];
          if (c == '\\') {
            if (i >= line.size()) break;
            const char e = line[i++];
            if (e == 'n') v += '\n';
            else if (e == '\\' || e == '"') v += e;
            else err("a bad escape in a label value", line);
          } else if (c == '"') {
            closed = true;
            break;
          } else {
            v += c;
          }
        }
        if (!closed) err("an unterminated label value", line);
        if (s.labels.count(lname)) err("a label given twice", line);
        s.labels[lname] = v;
        key += lname + "=" + v + ",";
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size() || line[i] != '}') {
        err("unterminated labels", line);
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      err("no value", line);
      continue;
    }
    const std::string value = line.substr(i + 1);
    char* end = nullptr;
    s.value = std::strtod(value.c_str(), &end);
    if (value.empty() || (end && *end && *end != ' ')) err("a value that is not a number", line);
    if (!series.insert(key).second) err("a series given twice", line);
    out.samples.push_back(std::move(s));
  }
  return out;
}

}  // namespace troupe::test
