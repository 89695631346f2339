#pragma once
// A small strict JSON parser for tests that check what troupe writes (trace
// files): the whole text must be one value (RFC 8259), else parse_json throws
// with the offset. Numbers are doubles; objects keep their members in order.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::test {

struct Json {
  enum class Type { null, boolean, number, string, array, object } type = Type::null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;

  /// The member `key` of an object (nullptr if none or not an object).
  const Json* get(std::string_view key) const {
    for (auto& [k, v] : members)
      if (k == key) return &v;
    return nullptr;
  }
  double num(std::string_view key, double otherwise = -1) const {
    auto* v = get(key);
    return v && v->type == Type::number ? v->n : otherwise;
  }
  std::string str(std::string_view key) const {
    auto* v = get(key);
    return v && v->type == Type::string ? v->s : std::string();
  }
};

namespace json_detail {

struct Parser {
  std::string_view t;
  std::size_t i = 0;

  [[noreturn]] void fail(const char* what) const {
    throw std::runtime_error(std::string("JSON: ") + what + " at offset " + std::to_string(i));
  }
  void ws() {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\n' || t[i] == '\r' || t[i] == '\t')) ++i;
  }
  bool eat(char c) {
    ws();
    if (i < t.size() && t[i] == c) return ++i, true;
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail((std::string("expected '") + c + "'").c_str());
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i >= t.size()) fail("unterminated string");
      const char c = t[i++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= t.size()) fail("unterminated escape");
      const char e = t[i++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (i + 4 > t.size()) fail("short \\u escape");
          const unsigned v = static_cast<unsigned>(std::stoul(std::string(t.substr(i, 4)), nullptr, 16));
          i += 4;
          if (v < 0x80) out += static_cast<char>(v);
          else out += '?';  // tests compare ASCII
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  Json value() {
    ws();
    if (i >= t.size()) fail("expected a value");
    Json v;
    const char c = t[i];
    if (c == '{') {
      ++i;
      v.type = Json::Type::object;
      if (eat('}')) return v;
      do {
        ws();
        std::string k = string();
        expect(':');
        v.members.emplace_back(std::move(k), value());
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      ++i;
      v.type = Json::Type::array;
      if (eat(']')) return v;
      do v.items.push_back(value());
      while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.type = Json::Type::string;
      v.s = string();
    } else if (t.substr(i, 4) == "true" || t.substr(i, 5) == "false") {
      v.type = Json::Type::boolean;
      v.b = t[i] == 't';
      i += v.b ? 4 : 5;
    } else if (t.substr(i, 4) == "null") {
      i += 4;
    } else {
      const std::size_t from = i;
      if (i < t.size() && t[i] == '-') ++i;
      if (i >= t.size() || t[i] < '0' || t[i] > '9') fail("expected a value");
      while (i < t.size() && ((t[i] >= '0' && t[i] <= '9') || t[i] == '.' || t[i] == 'e' || t[i] == 'E' ||
                              t[i] == '+' || t[i] == '-'))
        ++i;
      v.type = Json::Type::number;
      char* end = nullptr;
      const std::string num(t.substr(from, i - from));
      v.n = std::strtod(num.c_str(), &end);
      if (*end) fail("bad number");
    }
    return v;
  }
};

}  // namespace json_detail

inline Json parse_json(std::string_view text) {
  json_detail::Parser p{text};
  Json v = p.value();
  p.ws();
  if (p.i != text.size()) p.fail("text after the value");
  return v;
}

/// What a Chrome trace holds, checked: complete events have a name, a pid,
/// a tid, ts and dur >= 0, and on each thread they nest (none ends inside
/// another it began after); every flow start has its end (same id) and no
/// end lacks its start. `problems` says what is wrong.
struct ChromeCheck {
  std::size_t spans = 0, flows = 0, cross_process_flows = 0;
  std::vector<std::string> problems;
  std::vector<const Json*> events;  // every complete ("X") event
};
inline ChromeCheck check_chrome(const Json& root) {
  ChromeCheck c;
  const Json* evs = root.get("traceEvents");
  if (!evs || evs->type != Json::Type::array) {
    c.problems.push_back("no traceEvents array");
    return c;
  }
  std::vector<std::pair<double, double>> starts, ends;  // (id, pid)
  for (auto& e : evs->items) {
    const std::string ph = e.str("ph");
    if (ph == "X") {
      ++c.spans;
      c.events.push_back(&e);
      if (e.str("name").empty() || e.num("pid") < 0 || e.num("tid") < 0 || e.num("ts") < 0 || e.num("dur") < 0)
        c.problems.push_back("a complete event lacks name, pid, tid, ts or dur: " + e.str("name"));
    } else if (ph == "s") {
      starts.emplace_back(e.num("id"), e.num("pid"));
    } else if (ph == "f") {
      ends.emplace_back(e.num("id"), e.num("pid"));
    } else if (ph != "M") {
      c.problems.push_back("an event of phase '" + ph + "'");
    }
  }
  // Nesting, per (pid, tid): sorted by start (the longer first), each span
  // must end by the end of every span still open when it starts.
  std::map<std::pair<double, double>, std::vector<std::pair<double, double>>> by_thread;
  for (auto* e : c.events) by_thread[{e->num("pid"), e->num("tid")}].emplace_back(e->num("ts"), e->num("ts") + e->num("dur"));
  for (auto& [thread, spans] : by_thread) {
    std::sort(spans.begin(), spans.end(), [](auto& a, auto& b) { return a.first != b.first ? a.first < b.first : a.second > b.second; });
    std::vector<double> open;
    for (auto& [b, e] : spans) {
      while (!open.empty() && open.back() <= b + 1e-6) open.pop_back();
      if (!open.empty() && e > open.back() + 1e-6) {
        c.problems.push_back("on pid " + std::to_string(thread.first) + " tid " + std::to_string(thread.second) +
                             " a span [" + std::to_string(b) + ", " + std::to_string(e) + "] overlaps one ending at " +
                             std::to_string(open.back()) + " without nesting");
        break;
      }
      open.push_back(e);
    }
  }
  for (auto& [id, pid] : starts) {
    std::size_t matched = 0;
    for (auto& [eid, epid] : ends)
      if (eid == id) {
        ++matched;
        if (epid != pid) ++c.cross_process_flows;
      }
    if (matched == 0) c.problems.push_back("flow " + std::to_string(id) + " starts and never ends");
    c.flows += matched;
  }
  for (auto& [id, pid] : ends) {
    bool found = false;
    for (auto& s : starts) found = found || s.first == id;
    if (!found) c.problems.push_back("flow " + std::to_string(id) + " ends and never started");
  }
  return c;
}

}  // namespace troupe::test
