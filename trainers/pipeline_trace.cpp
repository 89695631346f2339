// A pipeline run's stage timelines as a Chrome trace (Perfetto opens it).
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <tuple>

#include <fmt/format.h>

#include "trainers/detail/pipeline_detail.hpp"
#include "trainers/detail/schedule_layout.hpp"

namespace troupe::pipeline {

namespace fs = std::filesystem;
using pipeline::detail::Layout;

namespace {

std::string span_name(const StageSpan& s) {
  if (s.mb < 0) return s.what;
  return fmt::format("{}{}@{}", s.what, s.mb, s.chunk);
}

}  // namespace

void detail::write_trace(const std::string& path, const std::vector<std::vector<StageSpan>>& by_actor, int K, int v,
                         int T) {
  fs::create_directories(fs::absolute(fs::path(path)).parent_path());
  std::ofstream out(path);
  if (!out) throw Error(fmt::format("pipeline: cannot write the trace to {}", path));
  const Layout lay{K, v};
  out << "{\"displayTimeUnit\":\"us\",\"traceEvents\":[\n";
  bool first = true;
  auto emit = [&](const std::string& ev) {
    out << (first ? "" : ",\n") << ev;
    first = false;
  };
  double origin = std::numeric_limits<double>::infinity();
  for (auto& spans : by_actor)
    for (auto& s : spans) origin = std::min(origin, s.start_us);
  // Actor a of the dp x pp x tp mesh is replica d's stage r at tp rank t: a
  // process track per replica, a thread track per (stage, tp rank).
  const auto uK = static_cast<std::size_t>(K), uT = static_cast<std::size_t>(T);
  auto tid_of = [&](std::size_t r, std::size_t t) { return r * uT + t; };
  // (replica, tp rank, step, mb, model stage, pass) -> span, for the flows.
  std::map<std::tuple<std::size_t, std::size_t, std::int64_t, int, int, char>, const StageSpan*> pass;
  for (std::size_t a = 0; a < by_actor.size(); ++a) {
    const std::size_t d = a / (uK * uT), r = a / uT % uK, t = a % uT;
    const std::string name = T > 1 ? fmt::format("stage {} tp {}", r, t) : fmt::format("stage {}", r);
    emit(fmt::format(R"({{"ph":"M","name":"thread_name","pid":{},"tid":{},"args":{{"name":"{}"}}}})", d, tid_of(r, t), name));
    if (r == 0 && t == 0)
      emit(fmt::format(R"({{"ph":"M","name":"process_name","pid":{},"args":{{"name":"pipeline replica {}"}}}})", d, d));
    for (auto& s : by_actor[a]) {
      emit(fmt::format(R"({{"ph":"X","name":"{}","cat":"{}","pid":{},"tid":{},"ts":{:.1f},"dur":{:.1f},"args":{{"step":{},"mb":{},"chunk":{}}}}})",
                       span_name(s), s.what, d, tid_of(r, t), s.start_us - origin, std::max(0.0, s.end_us - s.start_us),
                       s.step, s.mb, s.chunk));
      if (s.mb >= 0 && (s.what == "F" || s.what == "B" || s.what == "I"))
        pass[{d, t, s.step, s.mb, lay.stage(static_cast<int>(r), s.chunk), s.what == "F" ? 'F' : 'B'}] = &s;
    }
  }
  std::uint64_t id = 0;
  for (auto& [key, s] : pass) {
    auto [d, t, step, mb, stage, kind] = key;
    const int to = kind == 'F' ? stage + 1 : stage - 1;
    auto it = pass.find({d, t, step, mb, to, kind});
    if (it == pass.end() || lay.place(to).actor == lay.place(stage).actor) continue;
    const auto from_tid = tid_of(static_cast<std::size_t>(lay.place(stage).actor), t);
    const auto to_tid = tid_of(static_cast<std::size_t>(lay.place(to).actor), t);
    ++id;
    emit(fmt::format(R"({{"ph":"s","name":"{}","cat":"transfer","id":{},"pid":{},"tid":{},"ts":{:.1f}}})",
                     kind == 'F' ? "activation" : "gradient", id, d, from_tid, s->end_us - origin));
    emit(fmt::format(R"({{"ph":"f","bp":"e","name":"{}","cat":"transfer","id":{},"pid":{},"tid":{},"ts":{:.1f}}})",
                     kind == 'F' ? "activation" : "gradient", id, d, to_tid, it->second->start_us - origin));
  }
  out << "\n]}\n";
  if (!out) throw Error(fmt::format("pipeline: writing the trace to {} failed", path));
}

}  // namespace troupe::pipeline
