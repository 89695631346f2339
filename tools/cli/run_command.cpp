// troupe run FILE [--address HOST:PORT] [--token T | --token-file F] [--out DIR] [--epochs N] [--no-resume] [--quiet] [--trace FILE]
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

#include "actors/ckpt/checkpoint.hpp"
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

namespace {
constexpr const char* kRunUsage =
    "usage: troupe run TOPOLOGY.toml [--address HOST:PORT] [--token-file F] [--out DIR] [--epochs N] [--no-resume] "
    "[--quiet] [--trace FILE]";
}  // namespace

int run_command(int argc, char** argv) {
  std::string file, address, out, trace, token, token_file;
  std::int64_t epochs = 0;
  bool quiet = false, no_resume = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw UsageError(fmt::format("{} needs a value", flag));
      return argv[++i];
    };
    if (a == "--address") address = value("--address");
    else if (a == "--token") token = value("--token");
    else if (a == "--token-file") token_file = value("--token-file");
    else if (a == "--out") out = value("--out");
    else if (a == "--trace") trace = value("--trace");
    else if (a == "--epochs") {
      const std::string v = value("--epochs");
      char* end = nullptr;
      epochs = std::strtoll(v.c_str(), &end, 10);
      if (*end || epochs < 1) throw UsageError(fmt::format("--epochs needs a positive integer, got '{}'", v));
    } else if (a == "--quiet") quiet = true;
    else if (a == "--no-resume") no_resume = true;
    else if (!a.empty() && a[0] == '-') throw UsageError(fmt::format("unknown option '{}'; {}", a, kRunUsage));
    else if (file.empty()) file = a;
    else throw UsageError(fmt::format("one topology file, got '{}' and '{}'", file, a));
  }
  if (file.empty()) throw UsageError(kRunUsage);
  train::Topology t = train::load_topology(file);  // bad input stops here, before anything starts
  const bool piped = t.strategy != train::Strategy::data_parallel;
  if (!trace.empty() && !piped)
    throw UsageError(fmt::format("--trace: the trace shows a pipeline's stages; {} runs strategy \"data_parallel\" "
                                 "(`troupe trace` traces any job on a cluster: calls, all-reduces, steps)",
                                 file));
  if (epochs > 0) t.replica.epochs = epochs;
  if (no_resume) t.trainer.resume = false;
  if (!address.empty()) t.address = address;
  // The cluster: --address, else the file's, else $TROUPE_ADDRESS, else embedded.
  if (!t.address.empty()) ::setenv("TROUPE_ADDRESS", t.address.c_str(), 1);
  // The token as every cluster command takes it (and the workers, through the environment).
  if (!token.empty()) ::setenv("TROUPE_TOKEN", token.c_str(), 1);
  if (!token_file.empty()) ::setenv("TROUPE_TOKEN_FILE", token_file.c_str(), 1);
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
  const std::string workers =
      t.strategy == train::Strategy::data_parallel ? plural(t.trainer.replicas, "replica")
      : t.strategy == train::Strategy::pipeline
          ? fmt::format("pipeline of {}", plural(t.pipeline.stages, "stage"))
      : t.strategy == train::Strategy::hybrid
          ? fmt::format("{} x pipeline of {}", t.trainer.replicas, plural(t.pipeline.stages, "stage"))
          : fmt::format("3-D mesh dp {} x pp {} x tp {} ({}{})", t.trainer.replicas, t.pipeline.stages,
                        t.pipeline.tensor_parallel,
                        plural(t.trainer.replicas * t.pipeline.stages * t.pipeline.tensor_parallel, "stage actor"),
                        t.pipeline.tensor_parallel > 1
                            ? fmt::format("; hidden {} {} split over the tp ranks",
                                          t.replica.tp_blocks.size() == 1 ? "layer" : "layers",
                                          fmt::join(t.replica.tp_blocks, ", "))
                            : std::string(", tp = 1: no layer split"));
  // Said once the trainer has accepted the run (a refusal comes alone).
  auto banner = [&]() {
    fmt::print(stderr, "troupe run {}: {} ({}), MLP {}x{}x{}, batch {} per {}, {}{}{}\n", file, workers,
               t.trainer.processes ? "worker processes" : "in this process", t.replica.inputs,
               fmt::join(t.replica.hidden, "x"), t.replica.classes, t.replica.batch, piped ? "micro-batch" : "replica",
               plural(t.replica.epochs, "epoch"), t.address.empty() ? ", embedded cluster" : ", cluster " + t.address,
               resuming                           ? ", resuming from " + t.trainer.checkpoint_dir
               : t.trainer.checkpoint_dir.empty() ? ""
                                                  : ", checkpoints in " + t.trainer.checkpoint_dir);
  };
  train::PlotSeries plot;
  Runtime rt;
  // The trainer checks what it can (device, data files, the split and the
  // schedule) before anything is spawned or written: a run that cannot start
  // leaves no run folder behind. An error found in what a key names (a data
  // folder that is not there) points at the key, as parse errors do.
  auto key_error = [&](const data::DataError& e) {
    if (auto w = t.where.find("data.dir"); w != t.where.end())
      throw train::TopologyError(fmt::format("{}: key 'data.dir': {}", w->second, e.what()));
  };
  // The run folder is made with the first progress report: a run that cannot
  // start (placement, a dead replica) leaves none behind.
  std::optional<train::MetricsWriter> metrics;
  auto report = [&](const train::Progress& p) {
    if (!metrics) {
      fs::create_directories(dir);
      metrics.emplace(metrics_path, t.metrics, resuming);
    }
    metrics->write(p);
    // After a recovery, steps since the checkpoint come again: they replace the plotted ones.
    std::erase_if(plot.loss, [&](auto& pt) { return pt.first >= static_cast<double>(p.step); });
    std::erase_if(plot.accuracy, [&](auto& pt) { return pt.first >= static_cast<double>(p.step); });
    plot.loss.emplace_back(static_cast<double>(p.step), p.loss);
    if (p.evaluated) plot.accuracy.emplace_back(static_cast<double>(p.step), p.test_accuracy);
    if (quiet) return;
    const std::string line = train::progress_line(p);
    if (tty)
      fmt::print(stderr, "\r{}\033[K{}", line, p.evaluated || p.step == p.total_steps ? "\n" : "");
    else
      fmt::print(stderr, "{}\n", line);
  };
  train::FitResult result;
  std::string bubble;
  // A checkpoint of another run where this one would resume: say how out.
  auto fit = [&](auto& trainer) {
    auto refuse = [](const std::string& why) {
      return UsageError(fmt::format("{}\nthe checkpoint to resume from was written by a different run: --no-resume "
                                    "starts over (replacing it), or give this run its own [checkpoint] dir",
                                    why));
    };
    try {
      return trainer.fit(report);
    } catch (const ckpt::CheckpointError& e) {
      throw refuse(e.what());
    } catch (const RemoteError& e) {  // a worker's load found it
      if (e.type() != "troupe::ckpt::CheckpointError") throw;
      throw refuse(e.message());
    }
  };
  if (!piped) {
    auto trainer = [&]() {
      try {
        return dp::DataParallelTrainer(rt, t.replica, t.trainer);
      } catch (const data::DataError& e) {
        key_error(e);
        throw;
      }
    }();
    banner();
    result = fit(trainer);
  } else {
    auto po = t.pipeline_options();
    po.trace = trace;
    // A pipeline option that cannot work points at its key, as parse errors do.
    auto at_key = [&](std::string key, const char* what) {
      // A 3d run's stages and replicas come from [parallel].
      if (t.strategy == train::Strategy::three_d && key == "pipeline.stages" && !t.where.count(key)) key = "parallel.pp";
      auto w = t.where.find(key);
      throw train::TopologyError(fmt::format("{}: key '{}': {}", w != t.where.end() ? w->second : file, key, what));
    };
    auto trainer = [&]() {
      try {
        return pipeline::PipelineTrainer(rt, t.replica, po);
      } catch (const data::DataError& e) {
        key_error(e);
        throw;
      } catch (const pipeline::OptionError& e) {
        at_key(e.key(), e.what());
        throw;
      } catch (const pipeline::ScheduleError& e) {
        at_key("pipeline.schedule", e.what());
        throw;
      }
    }();
    banner();
    if (!quiet) fmt::print(stderr, "{}\n", trainer.describe());
    result = fit(trainer);
    bubble = fmt::format("  bubble {:.1f}% measured, {:.1f}% in the schedule", 100 * std::max(0.0, result.bubble),
                         100 * trainer.bubble_theory());
    if (!trace.empty()) fmt::print(stderr, "trace: {} (open it in Perfetto or chrome://tracing)\n", trace);
  }
  fs::create_directories(dir);
  if (t.plot == "svg") {
    const std::string svg = (fs::path(dir) / "plot.svg").string();
    train::write_svg_plot(svg, fmt::format("{}: {}, test accuracy {:.4f}", t.name, workers, result.accuracy), plot);
    fmt::print(stderr, "plot: {}\n", svg);
  }
  fmt::print(stderr, "metrics: {}\n", metrics_path);
  if (!result.checkpoint.empty()) fmt::print(stderr, "checkpoint: {}\n", result.checkpoint);
  if (result.resumed_from >= 0 && result.resumed_from == result.steps)
    fmt::print(stderr, "nothing to train: the checkpoint already holds the end of this run (step {}); --no-resume starts "
                       "over, --epochs N trains on to N epochs\n",
               result.steps);
  fmt::print("steps {}  test accuracy {:.4f}  test loss {:.4f}  {:.0f} samples/s  {:.1f} s{}{}{}\n", result.steps,
             result.accuracy, result.test_loss, result.samples_per_s, result.seconds, bubble,
             result.resumed_from >= 0 ? fmt::format("  (resumed from step {})", result.resumed_from) : "",
             result.recoveries ? fmt::format("  ({})", plural(result.recoveries, "recovery", "recoveries")) : "");
  return 0;
}

}  // namespace troupe::cli
