#include "tools/cli/schedule_command.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "runtime/errors.hpp"
#include "trainers/schedule.hpp"

namespace troupe::cli {

namespace {

int number(const std::string& flag, const std::string& v, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || n < lo || n > hi)
    throw UsageError(fmt::format("{} takes a whole number from {} to {}, got '{}'", flag, lo, hi, v));
  return static_cast<int>(n);
}

}  // namespace

int schedule_command(int argc, char** argv) {
  using namespace pipeline;
  std::string kind, file;
  int stages = 0, microbatches = 0, virt = 1;
  bool quiet = false, hybrid = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(fmt::format("{} needs a value", a));
      return argv[++i];
    };
    if (a == "--stages") stages = number(a, value(), 1, 128);
    else if (a == "--microbatches") microbatches = number(a, value(), 1, 1024);
    else if (a == "--virtual") virt = number(a, value(), 1, 16);
    else if (a == "--file") file = value();
    else if (a == "--quiet") quiet = true;
    else if (a == "--hybrid") hybrid = true;
    else if (!a.empty() && a[0] == '-') throw UsageError(fmt::format("unknown option '{}'", a));
    else if (kind.empty()) kind = a;
    else throw UsageError(fmt::format("one schedule name, got '{}' and '{}'", kind, a));
  }
  Schedule s;
  std::string title;
  if (!file.empty()) {
    if (!kind.empty() || stages || microbatches || virt != 1 || hybrid)
      throw UsageError("--file takes the schedule as written: no name, --stages, --microbatches, --virtual or --hybrid");
    std::ifstream in(file);
    if (!in) throw UsageError(fmt::format("{}: cannot read the schedule file: {}", file, std::strerror(errno)));
    std::stringstream text;
    text << in.rdbuf();
    try {
      s = parse(text.str());
    } catch (const ScheduleError& e) {
      throw ScheduleError(fmt::format("{}: {}", file, e.what()));
    }
    title = fmt::format("{}", file);
  } else {
    if (!kind.empty() && (!stages || !microbatches))
      throw UsageError(fmt::format("{} needs {} (troupe schedule {} --stages K --microbatches M)", kind,
                                   !stages ? "--stages" : "--microbatches", kind));
    if (kind.empty() || !stages || !microbatches)
      throw UsageError("usage: troupe schedule gpipe|1f1b|interleaved|zb-h1 --stages K --microbatches M "
                       "[--virtual V] [--hybrid], or troupe schedule --file FILE");
    if (parse_kind(kind) == Kind::interleaved && virt < 2)
      throw UsageError("interleaved needs --virtual V, 2 or more chunks per stage (with 1 it is 1f1b)");
    s = generate(parse_kind(kind), stages, microbatches, virt, hybrid);
    title = kind;
  }
  Report r;
  try {
    r = check(s);  // a refused schedule throws, naming stage, action and micro-batch
  } catch (const ScheduleError& e) {
    if (file.empty()) throw;
    throw ScheduleError(fmt::format("{}: {}", file, e.what()));
  }
  fmt::print("schedule {}: {} stage{}, {} micro-batch{}, {} chunk{} per stage\n", title, s.stages,
             s.stages == 1 ? "" : "s", s.microbatches, s.microbatches == 1 ? "" : "es", s.virtual_stages,
             s.virtual_stages == 1 ? "" : "s");
  if (!quiet) fmt::print("{}", to_text(s));
  std::string theory;
  if (file.empty()) {
    const Kind k = parse_kind(kind);
    // The formulas hold for enough micro-batches: say so where they do not apply.
    const char* assumes = k == Kind::zb_h1 && s.microbatches < s.stages ? ", which assumes micro-batches >= stages"
                          : k == Kind::interleaved && s.virtual_stages > 1 && s.microbatches % s.stages != 0
                              ? ", which assumes micro-batches a multiple of stages"
                              : "";
    theory = fmt::format(" (textbook {:.3f}{})", theory_bubble(k, s.stages, s.microbatches, s.virtual_stages), assumes);
  }
  fmt::print("bubble {:.3f}{}, makespan {:g} (simulated: F = I = W = 1, B = 2, transfers free)\n", r.bubble, theory,
             r.makespan);
  std::string peaks;
  for (int p : r.peak_activations) peaks += fmt::format("{}{}", peaks.empty() ? "" : " ", p);
  // With chunks, each micro-batch counts once per chunk it is live in.
  fmt::print("peak live micro-batches{} per stage: {}\n", s.virtual_stages > 1 ? " (counted per chunk)" : "", peaks);
  return 0;
}

}  // namespace troupe::cli
