// trace::to_chrome: processes' traces as one Chrome trace (the JSON trace
// event format Perfetto and chrome://tracing open). Recording is trace.cpp.
#include <algorithm>
#include <cstdint>
#include <map>
#include <set>

#include <fmt/format.h>

#include "runtime/detail/json.hpp"
#include "runtime/trace.hpp"

namespace troupe::trace {

using troupe::detail::json_string;

namespace {

// What an event's number means, by kind.
const char* arg_name(Kind k) noexcept {
  switch (k) {
    case Kind::collective: return "bytes";
    case Kind::step: return "step";
    case Kind::phase: return "microbatch";
    default: return "n";
  }
}

}  // namespace

std::string to_chrome(const std::vector<ProcessTrace>& processes, const std::vector<std::string>& notes,
                      ChromeStats* stats) {
  ChromeStats st;
  std::int64_t origin = INT64_MAX;
  for (auto& p : processes)
    for (auto& e : p.events) origin = std::min(origin, e.ts_ns);
  if (origin == INT64_MAX) origin = 0;
  const auto us = [origin](std::int64_t ns) { return static_cast<double>(ns - origin) / 1000.0; };
  // Flows whose both ends are here: a send and a call with the same id.
  std::set<std::uint64_t> sent, ran;
  for (auto& p : processes)
    for (auto& e : p.events) {
      if (!e.flow) continue;
      if (e.kind == static_cast<std::uint32_t>(Kind::send)) sent.insert(e.flow);
      if (e.kind == static_cast<std::uint32_t>(Kind::call)) ran.insert(e.flow);
    }
  std::string out = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  bool first = true;
  auto emit = [&](const std::string& ev) {
    out += first ? "" : ",\n";
    out += ev;
    first = false;
  };
  std::map<std::uint64_t, int> pids_seen;  // two hosts may have a process with the same pid
  for (auto& p : processes) {
    st.dropped += p.dropped;
    st.sampled_out += p.sampled_out;
    st.sampling = std::max(st.sampling, p.sampling);
    const int again = pids_seen[p.pid]++;
    const std::uint64_t pid = p.pid + static_cast<std::uint64_t>(again) * 100'000'000ull;  // the viewer's process id
    std::string pname = fmt::format("{} (pid {}", p.label, p.pid);
    if (p.sampling > 1)
      pname += fmt::format("; calls sampled, down to 1 in {}: {} not traced", p.sampling, p.sampled_out);
    if (p.dropped) pname += fmt::format("; {} events dropped", p.dropped);
    pname += ")";
    emit(fmt::format(R"({{"ph":"M","name":"process_name","pid":{},"args":{{"name":{}}}}})", pid,
                     json_string(pname)));
    // A track's spans must nest; those that overlap without nesting (two
    // all-reduces in flight, a reentrant actor) go onto extra lanes of it.
    const auto n = p.events.size();
    const auto dur_of = [&](const Event& e) {  // a send gets a microsecond: the flow's slice
      return e.kind == static_cast<std::uint32_t>(Kind::send) ? std::int64_t{1000} : std::max<std::int64_t>(e.dur_ns, 0);
    };
    std::vector<std::size_t> order(n), lane(n, 0);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const auto &x = p.events[a], &y = p.events[b];
      if (x.track != y.track) return x.track < y.track;
      if (x.ts_ns != y.ts_ns) return x.ts_ns < y.ts_ns;
      return dur_of(x) > dur_of(y);  // the enclosing one first
    });
    std::map<std::uint64_t, std::vector<std::vector<std::int64_t>>> open;  // track -> lanes -> ends of open spans
    std::map<std::uint64_t, std::size_t> lanes;                             // track -> lanes used
    for (auto i : order) {
      const auto& e = p.events[i];
      const std::int64_t end = e.ts_ns + dur_of(e);
      auto& ls = open[e.track];
      std::size_t k = 0;
      for (; k < ls.size(); ++k) {
        auto& stack = ls[k];
        while (!stack.empty() && stack.back() <= e.ts_ns) stack.pop_back();
        if (stack.empty() || stack.back() >= end) break;
      }
      if (k == ls.size()) ls.emplace_back();
      ls[k].push_back(end);
      lane[i] = k;
      lanes[e.track] = std::max(lanes[e.track], k + 1);
    }
    std::map<std::pair<std::uint64_t, std::size_t>, std::size_t> tid;  // (track, lane) -> a small thread id
    auto tid_of = [&](std::uint64_t track, std::size_t k) {
      auto it = tid.find({track, k});
      if (it != tid.end()) return it->second;
      const std::size_t id = tid.size() + 1;
      tid[{track, k}] = id;
      std::string name = fmt::format("track {}", track);
      for (auto& t : p.tracks)
        if (t.id == track) name = t.name;
      if (k) name += fmt::format(" (overlapping, {})", k + 1);
      emit(fmt::format(R"({{"ph":"M","name":"thread_name","pid":{},"tid":{},"args":{{"name":{}}}}})", pid, id,
                       json_string(name)));
      emit(fmt::format(R"({{"ph":"M","name":"thread_sort_index","pid":{},"tid":{},"args":{{"sort_index":{}}}}})", pid, id,
                       id));
      return id;
    };
    for (auto& t : p.tracks)
      for (std::size_t k = 0; k < std::max<std::size_t>(lanes[t.id], 1); ++k) tid_of(t.id, k);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& e = p.events[i];
      const auto t = tid_of(e.track, lane[i]);
      const auto kind = static_cast<Kind>(e.kind);
      const bool is_send = kind == Kind::send;
      std::string args;
      if (e.arg >= 0) args = fmt::format(R"("{}":{})", arg_name(kind), e.arg);
      if (e.flow) args += fmt::format(R"({}"flow":{})", args.empty() ? "" : ",", e.flow);
      emit(fmt::format(R"({{"ph":"X","name":{},"cat":"{}","pid":{},"tid":{},"ts":{:.3f},"dur":{:.3f},"args":{{{}}}}})",
                       json_string(is_send ? "send " + e.name : e.name), kind_name(kind), pid, t, us(e.ts_ns),
                       static_cast<double>(dur_of(e)) / 1000.0, args));
      ++st.events;
      if (e.flow && sent.count(e.flow) && ran.count(e.flow)) {
        if (is_send) {
          emit(fmt::format(R"({{"ph":"s","name":"call","cat":"flow","id":{},"pid":{},"tid":{},"ts":{:.3f}}})", e.flow,
                           pid, t, us(e.ts_ns) + 0.5));
        } else if (kind == Kind::call) {
          emit(fmt::format(R"({{"ph":"f","bp":"e","name":"call","cat":"flow","id":{},"pid":{},"tid":{},"ts":{:.3f}}})",
                           e.flow, pid, t, us(e.ts_ns)));
          ++st.flows;
        }
      }
    }
  }
  out += "\n],\"metadata\":{\"troupe\":{";
  out += fmt::format(R"("processes":{},"events":{},"flows":{},"dropped":{},"notes":[)", processes.size(), st.events,
                     st.flows, st.dropped);
  for (std::size_t i = 0; i < notes.size(); ++i) out += (i ? "," : "") + json_string(notes[i]);
  out += "]}}}\n";
  if (stats) *stats = st;
  return out;
}

}  // namespace troupe::trace
