// troupe run FILE [--address HOST:PORT] [--out DIR] [--epochs N] [--no-resume] [--quiet]
//
// Reads and checks the topology (nothing starts on a bad file), joins the
// cluster it names (or the embedded one), trains, and shows a progress bar
// (step, loss, samples/s, ETA) on a terminal or one line per report
// otherwise; writes <out>/metrics.jsonl (or .csv) and <out>/plot.svg.
#include "tools/cli/run_command.hpp"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "actors/data/idx.hpp"
#include "runtime/init.hpp"
#include "runtime/troupe.hpp"
#include "trainers/metrics.hpp"
#include "trainers/topology.hpp"

namespace troupe::cli {

namespace fs = std::filesystem;

namespace {
std::string plural(std::int64_t n, const char* one, const char* many = nullptr) {
  return n == 1 ? fmt::format("1 {}", one) : many ? fmt::format("{} {}", n, many) : fmt::format("{} {}s", n, one);
}
}  // namespace

int run_command(int argc, char** argv) {
  std::string file, address, out;
  std::int64_t epochs = 0;
  bool quiet = false, no_resume = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw UsageError(fmt::format("{} needs a value", flag));
      return argv[++i];
    };
    if (a == "--address") address = value("--address");
    else if (a == "--out") out = value("--out");
    else if (a == "--epochs") {
      const std::string v = value("--epochs");
      char* end = nullptr;
      epochs = std::strtoll(v.c_str(), &end, 10);
      if (*end || epochs < 1) throw UsageError(fmt::format("--epochs needs a positive integer, got '{}'", v));
    } else if (a == "--quiet") quiet = true;
    else if (a == "--no-resume") no_resume = true;
    else if (!a.empty() && a[0] == '-') throw UsageError(fmt::format("unknown option '{}'", a));
    else if (file.empty()) file = a;
    else throw UsageError(fmt::format("one topology file, got '{}' and '{}'", file, a));
  }
  if (file.empty()) throw UsageError("usage: troupe run TOPOLOGY.toml [--address HOST:PORT] [--out DIR] [--epochs N] "
                                     "[--no-resume] [--quiet]");
  dp::Topology t = dp::load_topology(file);  // bad input stops here, before anything starts
  if (epochs > 0) t.replica.epochs = epochs;
  if (no_resume) t.trainer.resume = false;
  if (!address.empty()) t.address = address;
  // The cluster: --address, else the file's, else $TROUPE_ADDRESS, else embedded.
  if (!t.address.empty()) ::setenv("TROUPE_ADDRESS", t.address.c_str(), 1);
  // The cluster is chosen above (through the environment); init sees no flags.
  int no_args = 1;
  char* self[] = {argv[0], nullptr};
  troupe::init(no_args, self);
  const std::string file_dir = !t.out_dir.empty() ? t.out_dir : "runs/" + t.name;
  const std::string dir = !out.empty() ? out : file_dir;
  // --out moves the whole run: checkpoints the file keeps under its output
  // folder go under the new one (another run's checkpoint is never resumed
  // from, nor overwritten); ones kept elsewhere stay where the file says.
  if (!out.empty() && !t.trainer.checkpoint_dir.empty()) {
    const auto rel = fs::path(t.trainer.checkpoint_dir).lexically_normal().lexically_relative(
        fs::path(file_dir).lexically_normal());
    if (!rel.empty() && *rel.begin() != "..") t.trainer.checkpoint_dir = (fs::path(out) / rel).string();
  }
  const std::string metrics_path = (fs::path(dir) / ("metrics." + t.metrics)).string();
  const bool resuming = t.trainer.resume && !t.trainer.checkpoint_dir.empty() &&
                        fs::exists(fs::path(t.trainer.checkpoint_dir) / "latest.troupeck");
  const bool tty = ::isatty(STDERR_FILENO);
  fmt::print(stderr, "troupe run {}: {} ({}), MLP {}x{}x{}, batch {} per replica, {}{}{}\n", file,
             plural(t.trainer.replicas, "replica"), t.trainer.processes ? "worker processes" : "in this process",
             t.replica.inputs, fmt::join(t.replica.hidden, "x"), t.replica.classes, t.replica.batch,
             plural(t.replica.epochs, "epoch"), t.address.empty() ? ", embedded cluster" : ", cluster " + t.address,
             resuming                          ? ", resuming from " + t.trainer.checkpoint_dir
             : t.trainer.checkpoint_dir.empty() ? ""
                                                : ", checkpoints in " + t.trainer.checkpoint_dir);
  dp::PlotSeries plot;
  Runtime rt;
  // The trainer checks what it can (device, data files) before anything is
  // spawned or written: a run that cannot start leaves no run folder behind.
  // An error found in what a key names (a data folder that is not there)
  // points at the key, as parse errors do.
  auto trainer = [&]() {
    try {
      return dp::DataParallelTrainer(rt, t.replica, t.trainer);
    } catch (const data::DataError& e) {
      if (auto w = t.where.find("data.dir"); w != t.where.end())
        throw dp::TopologyError(fmt::format("{}: key 'data.dir': {}", w->second, e.what()));
      throw;
    }
  }();
  // The run folder is made with the first progress report: a run that cannot
  // start (placement, a dead replica) leaves none behind.
  std::optional<dp::MetricsWriter> metrics;
  auto result = trainer.fit([&](const dp::Progress& p) {
    if (!metrics) {
      fs::create_directories(dir);
      metrics.emplace(metrics_path, t.metrics, resuming);
    }
    metrics->write(p);
    plot.loss.emplace_back(static_cast<double>(p.step), p.loss);
    if (p.evaluated) plot.accuracy.emplace_back(static_cast<double>(p.step), p.test_accuracy);
    if (quiet) return;
    const std::string line = dp::progress_line(p);
    if (tty)
      fmt::print(stderr, "\r{}\033[K{}", line, p.evaluated || p.step == p.total_steps ? "\n" : "");
    else
      fmt::print(stderr, "{}\n", line);
  });
  fs::create_directories(dir);
  if (t.plot == "svg") {
    const std::string svg = (fs::path(dir) / "plot.svg").string();
    dp::write_svg_plot(svg, fmt::format("{}: {}, test accuracy {:.4f}", t.name, plural(t.trainer.replicas, "replica"),
                                        result.accuracy),
                       plot);
    fmt::print(stderr, "plot: {}\n", svg);
  }
  fmt::print(stderr, "metrics: {}\n", metrics_path);
  if (!result.checkpoint.empty()) fmt::print(stderr, "checkpoint: {}\n", result.checkpoint);
  fmt::print("steps {}  test accuracy {:.4f}  test loss {:.4f}  {:.0f} samples/s  {:.1f} s{}{}\n", result.steps,
             result.accuracy, result.test_loss, result.samples_per_s, result.seconds,
             result.resumed_from >= 0 ? fmt::format("  (resumed from step {})", result.resumed_from) : "",
             result.recoveries ? fmt::format("  ({})", plural(result.recoveries, "recovery", "recoveries")) : "");
  return 0;
}

}  // namespace troupe::cli
