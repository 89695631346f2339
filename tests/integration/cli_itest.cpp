// The command-line programs, run as real processes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/process.hpp"

using troupe::test::bin;
using troupe::test::run_process;

namespace {
/// Runs `troupe-bench <suite> --json <small sizes>`; checks it succeeded with
/// one JSON line for that suite and returns the line.
std::string bench_json(const std::string& suite, const std::string& sync_calls, const std::string& async_calls,
                       const std::string& batch) {
  auto r = run_process({bin("troupe-bench"), suite, "--json", "--sync-calls", sync_calls, "--async-calls",
                        async_calls, "--batch", batch},
                       std::chrono::seconds(120));
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("{\"suite\":\"" + suite + "\",\"rows\":["));
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  return r.out;
}
std::string row_key(const std::string& system, const std::string& pattern) {
  return "\"system\":\"" + system + "\",\"pattern\":\"" + pattern + "\"";
}
}  // namespace

TEST_CASE("troupe version and info describe the build", "[cli]") {
  auto v = run_process({bin("troupe"), "version"});
  CHECK(v.exit_code == 0);
  CHECK_THAT(v.out, Catch::StartsWith("troupe ") && Catch::Contains("CUDA:"));
  auto info = run_process({bin("troupe"), "info"});
  CHECK(info.exit_code == 0);
  CHECK_THAT(info.out, Catch::Contains("cpu threads") && Catch::Contains("gpus"));
}

TEST_CASE("troupe refuses an unknown command with usage and exit 2", "[cli]") {
  auto r = run_process({bin("troupe"), "frobnicate"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown command 'frobnicate'") && Catch::Contains("usage"));
  CHECK(run_process({bin("troupe")}).exit_code == 2);
}

TEST_CASE("with no cluster, every cluster command says there is no cluster address", "[cli]") {
  const std::string home = "/tmp/troupe-cli-nohome-" + std::to_string(::getpid());
  std::filesystem::create_directories(home);
  for (const char* cmd : {"status", "nodes", "actors"}) {
    auto r = run_process({bin("troupe"), cmd}, std::chrono::seconds(60),
                         {"HOME=" + home, "TROUPE_ADDRESS=", "TROUPE_TOKEN=", "TROUPE_TOKEN_FILE="});
    INFO(cmd << ": " << r.err);
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.err, Catch::Contains("no cluster address"));
  }
  std::filesystem::remove_all(home);
}

TEST_CASE("troupe schedule prints a checked schedule, or refuses one naming the place", "[cli][schedule]") {
  auto ok = run_process({bin("troupe"), "schedule", "1f1b", "--stages", "4", "--microbatches", "8"});
  CHECK(ok.exit_code == 0);
  CHECK_THAT(ok.out, Catch::Contains("schedule 1f1b: 4 stages, 8 micro-batches") &&
                         Catch::Contains("stage 3: RECV_F0 F0 B0 SEND_B0 RECV_F1") &&
                         Catch::Contains("bubble 0.273 (textbook 0.273)") &&
                         Catch::Contains("peak live micro-batches per stage: 4 3 2 1"));
  const std::string file = "/tmp/troupe-cli-schedule-" + std::to_string(::getpid()) + ".txt";
  // Stage 0 waits for micro-batch 0's gradient before it sends micro-batch 1's activation.
  std::ofstream(file) << "# a cycle\nstage 0: F0 SEND_F0 F1 RECV_B0 B0 SEND_F1 RECV_B1 B1 STEP\n"
                         "stage 1: RECV_F0 F0 RECV_F1 F1 B0 SEND_B0 B1 SEND_B1 STEP\n";
  auto bad = run_process({bin("troupe"), "schedule", "--file", file});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains(file + ": schedule can deadlock: stage 0, action 3 (RECV_B0) waits for stage 1"));
  std::ofstream(file) << "stage 0: F0 B0 STEP\nstage 1: F0 B0 STEP\n";  // no transfers between the stages
  bad = run_process({bin("troupe"), "schedule", "--file", file});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("stage 0, action 0 (F0): no SEND_F0 sends its activation"));
  std::filesystem::remove(file);
  auto typo = run_process({bin("troupe"), "schedule", "1f1b", "--stages", "two", "--microbatches", "4"});
  CHECK(typo.exit_code == 2);
  CHECK_THAT(typo.err, Catch::Contains("--stages takes a whole number from 1 to 128, got 'two'"));
  auto missing = run_process({bin("troupe"), "schedule", "zb-h1", "--stages", "4"});
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Catch::Contains("zb-h1 needs --microbatches"));
  // Fewer micro-batches than stages: the textbook formula does not apply, and the output says so.
  auto few = run_process({bin("troupe"), "schedule", "zb-h1", "--stages", "4", "--microbatches", "2", "--quiet"});
  CHECK_THAT(few.out, Catch::Contains("(textbook 0.333, which assumes micro-batches >= stages)"));
  // interleaved without --virtual would be 1f1b: refused, saying so.
  auto one_chunk = run_process({bin("troupe"), "schedule", "interleaved", "--stages", "2", "--microbatches", "4"});
  CHECK(one_chunk.exit_code == 2);
  CHECK_THAT(one_chunk.err, Catch::Contains("interleaved needs --virtual V"));
  // --hybrid: the REDUCE_GRAD a hybrid run's stages do.
  auto hybrid = run_process({bin("troupe"), "schedule", "1f1b", "--stages", "2", "--microbatches", "2", "--hybrid"});
  CHECK(hybrid.exit_code == 0);
  CHECK_THAT(hybrid.out, Catch::Contains("B1 REDUCE_GRAD STEP"));
  auto chunks = run_process({bin("troupe"), "schedule", "interleaved", "--stages", "2", "--microbatches", "4",
                             "--virtual", "2", "--quiet"});
  CHECK_THAT(chunks.out, Catch::Contains("peak live micro-batches (counted per chunk) per stage:"));
}

TEST_CASE("troupe COMMAND --help prints that command's usage and exits 0", "[cli]") {
  for (const char* cmd : {"run", "status", "nodes", "actors", "schedule"}) {
    auto r = run_process({bin("troupe"), cmd, "--help"});
    INFO(cmd << ": " << r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains(std::string("usage: troupe ") + cmd));
  }
  CHECK_THAT(run_process({bin("troupe"), "run", "-h"}).out, Catch::Contains("FILE.toml"));
  // A misspelt option gets the usage with it, not only "unknown".
  auto typo = run_process({bin("troupe"), "run", "x.toml", "--epoch", "1"});
  CHECK(typo.exit_code == 2);
  CHECK_THAT(typo.err, Catch::Contains("unknown option '--epoch'") && Catch::Contains("[--epochs N]"));
}

TEST_CASE("troupe-bench actors --json prints one line with both systems", "[cli][bench]") {
  const auto out = bench_json("actors", "500", "5000", "500");
  for (const char* p : {"sync_1to1", "async_1to1", "async_nton", "sync_1k_arg"})
    CHECK_THAT(out, Catch::Contains(row_key("troupe", p)));
  // CAF is a peer that may be absent; when present its rows are there too.
  if (out.find("\"caf\"") != std::string::npos) CHECK_THAT(out, Catch::Contains(row_key("caf", "sync_1to1")));
}

TEST_CASE("troupe-bench remote --json has troupe rows next to both raw floors", "[cli][bench]") {
  // Calls cross a real worker process; every result is checked by the bench.
  const auto out = bench_json("remote", "200", "4000", "400");
  for (const char* sys : {"troupe", "raw_tcp", "raw_unix"})
    for (const char* p : {"sync_1to1", "async_1to1", "async_nton"}) CHECK_THAT(out, Catch::Contains(row_key(sys, p)));
}

TEST_CASE("troupe-bench rejects bad options", "[cli][bench]") {
  auto r = run_process({bin("troupe-bench"), "actors", "--sync-calls", "-5"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--sync-calls needs a positive integer"));
  CHECK(run_process({bin("troupe-bench"), "nosuchsuite"}).exit_code == 2);
}

TEST_CASE("troupe-daemon without a role prints usage and exits 2", "[cli]") {
  auto r = run_process({bin("troupe-daemon"), "--frobnicate"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("unknown option '--frobnicate'") && Catch::Contains("usage"));
}

TEST_CASE("troupe run trains from a topology file: progress, metrics, plot; bad files stop it with the place", "[cli][dp]") {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / ("troupe-run-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto toml = (dir / "tiny.toml").string();
  {
    std::ofstream f(toml);
    f << "name = \"tiny\"\n[model]\nhidden = [32]\n[data]\ntrain_limit = 1024\neval_limit = 500\n"
         "[train]\nstrategy = \"data_parallel\"\nreplicas = 2\nbatch = 32\nepochs = 2\nchunk_steps = 4\n"
         "[optimizer]\nlr = 0.05\n[schedule]\nkind = \"cosine\"\n"
         "[checkpoint]\ndir = \"" << (dir / "ckpt").string() << "\"\ninterval_steps = 8\n"
         "[output]\ndir = \"" << (dir / "out").string() << "\"\nmetrics = \"csv\"\n";
  }
  auto r = run_process({bin("troupe"), "run", toml}, std::chrono::seconds(300));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("steps 32") && Catch::Contains("test accuracy 0."));
  CHECK_THAT(r.err, Catch::Contains("step 32/32") && Catch::Contains("samples/s") && Catch::Contains("test acc"));
  std::ifstream metrics(dir / "out" / "metrics.csv");
  std::string header, line;
  std::getline(metrics, header);
  CHECK(header == "step,total_steps,epoch,loss,lr,samples_per_s,elapsed_s,test_accuracy,test_loss");
  int lines = 0;
  while (std::getline(metrics, line)) ++lines;
  CHECK(lines == 8);  // 32 steps in chunks of 4
  CHECK(fs::file_size(dir / "out" / "plot.svg") > 500);
  CHECK(fs::exists(dir / "ckpt" / "latest.troupeck"));
  // Run again: it resumes at the end (nothing to train) and says so.
  auto again = run_process({bin("troupe"), "run", toml, "--quiet"}, std::chrono::seconds(120));
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("resumed from step 32"));

  // A mistake: exit 2, the file, line and key, and nothing written.
  const auto bad = (dir / "bad.toml").string();
  {
    std::ofstream f(bad);
    f << "[train]\nstrategy = \"data_parallel\"\nreplicas = -1\n[output]\ndir = \"" << (dir / "bad-out").string() << "\"\n";
  }
  auto b = run_process({bin("troupe"), "run", bad}, std::chrono::seconds(30));
  CHECK(b.exit_code == 2);
  CHECK_THAT(b.err, Catch::Contains(bad + ":3:12: key 'train.replicas'"));
  CHECK_FALSE(fs::exists(dir / "bad-out"));
  auto missing = run_process({bin("troupe"), "run", (dir / "nope.toml").string()}, std::chrono::seconds(30));
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.err, Catch::Contains("nope.toml: cannot read"));

  // A data folder that is not there: the key's place, before anything starts.
  const auto nodata = (dir / "nodata.toml").string();
  {
    std::ofstream f(nodata);
    f << "[train]\nstrategy = \"data_parallel\"\n[data]\ndir = \"/nonexistent/fm\"\n[output]\ndir = \""
      << (dir / "nodata-out").string() << "\"\n";
  }
  auto nd = run_process({bin("troupe"), "run", nodata}, std::chrono::seconds(30));
  CHECK(nd.exit_code == 2);
  CHECK_THAT(nd.err, Catch::Contains(nodata + ":4:7: key 'data.dir': the data folder '/nonexistent/fm' has no "
                                              "Fashion-MNIST"));
  CHECK_FALSE(fs::exists(dir / "nodata-out"));
  // More replicas than the machine has room for: what to change, and no run folder either.
  const auto crowded = (dir / "crowded.toml").string();
  {
    std::ofstream f(crowded);
    f << "[train]\nstrategy = \"data_parallel\"\nreplicas = 64\n[resources]\ncpus = 1024\n[output]\ndir = \""
      << (dir / "crowded-out").string() << "\"\n";
  }
  auto cr = run_process({bin("troupe"), "run", crowded}, std::chrono::seconds(60));
  CHECK(cr.exit_code == 2);  // what it asks for is the input's fault, as a bad key is
  CHECK_THAT(cr.err, Catch::Contains("64 replicas, each asking for CPU=1024") && Catch::Contains("fewer replicas"));
  CHECK_FALSE(fs::exists(dir / "crowded-out"));
  // --out moves the run, the checkpoints the file keeps under its output folder too.
  const auto moved = (dir / "moved").string();
  const auto inside = (dir / "inside.toml").string();
  {
    std::ofstream f(inside);
    f << "name = \"inside\"\n[model]\nhidden = [16]\n[data]\ntrain_limit = 256\neval_limit = 100\n"
         "[train]\nstrategy = \"data_parallel\"\nreplicas = 1\nprocesses = false\nbatch = 32\nepochs = 1\n"
         "[checkpoint]\ndir = \""
      << (dir / "in-out" / "checkpoints").string() << "\"\n[output]\ndir = \"" << (dir / "in-out").string() << "\"\n";
  }
  auto mv = run_process({bin("troupe"), "run", inside, "--out", moved, "--quiet"}, std::chrono::seconds(120));
  INFO(mv.err);
  CHECK(mv.exit_code == 0);
  CHECK_THAT(mv.err, Catch::Contains(": 1 replica (in this process)") && Catch::Contains(", 1 epoch, "));
  CHECK_THAT(mv.err, !Catch::Contains("1 epochs") && !Catch::Contains("1 replicas"));
  CHECK(fs::exists(fs::path(moved) / "checkpoints" / "latest.troupeck"));
  CHECK(fs::exists(fs::path(moved) / "metrics.jsonl"));
  CHECK_FALSE(fs::exists(dir / "in-out"));
  fs::remove_all(dir);
}

TEST_CASE("troupe run trains a pipeline: the split, the bubble, a trace; a bad option names its key", "[cli][pipeline]") {
  namespace fs = std::filesystem;
  const auto dir = fs::temp_directory_path() / ("troupe-run-pp-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto topology = [&](const std::string& name, const std::string& pipeline) {
    const auto path = (dir / (name + ".toml")).string();
    std::ofstream f(path);
    f << "name = \"" << name << "\"\n[model]\nhidden = [32, 32, 32]\n[data]\ntrain_limit = 1024\neval_limit = 500\n"
         "[train]\nstrategy = \"pipeline\"\nbatch = 16\nepochs = 1\nchunk_steps = 4\n"
         "[optimizer]\nname = \"adamw\"\nlr = 0.001\n"
         "[pipeline]\n" << pipeline << "\n"
         "[output]\ndir = \"" << (dir / name).string() << "\"\n";
    return path;
  };
  const auto ok = topology("ok", "stages = 2\nmicrobatches = 4\nschedule = \"zb-h1\"");
  const auto trace = (dir / "trace.json").string();
  auto r = run_process({bin("troupe"), "run", ok, "--trace", trace}, std::chrono::seconds(300));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("model stage 0 (stage 0): blocks [0, 1)") && Catch::Contains("bubble"));
  CHECK_THAT(r.out, Catch::Contains("steps 16") && Catch::Contains("% measured, ") &&
                        Catch::Contains("% in the schedule"));
  std::ifstream in(trace);
  std::stringstream text;
  text << in.rdbuf();
  CHECK_THAT(text.str(), Catch::Contains("\"traceEvents\"") && Catch::Contains("\"name\":\"I0@0\"") &&
                             Catch::Contains("\"cat\":\"transfer\""));
  CHECK(fs::file_size(dir / "ok" / "plot.svg") > 500);
  // The same run cut elsewhere finds the first run's checkpoint: each stage
  // takes its part of it (resharded), and the run says so.
  const std::string ckpt = "\n[checkpoint]\ndir = \"" + (dir / "ck").string() + "\"\ninterval_steps = 8";
  const auto first = topology("ck", "stages = 2\nmicrobatches = 4" + ckpt);
  REQUIRE(run_process({bin("troupe"), "run", first, "--quiet"}, std::chrono::seconds(300)).exit_code == 0);
  const auto recut = topology("ck", "stages = 2\nmicrobatches = 4\nlayers = [[0, 3], [3, 4]]" + ckpt);
  auto again = run_process({bin("troupe"), "run", recut, "--quiet", "--epochs", "2"}, std::chrono::seconds(300));
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.err, Catch::Contains("resharding a checkpoint saved as dp 1 x pp 2 x tp 1 (blocks 0,1,4) for dp 1 x pp 2 "
                                        "x tp 1 (blocks 0,3,4): step 16"));
  CHECK_THAT(again.out, Catch::Contains("steps 32"));
  // Another model finds it too: refused, naming what differs and the way out; --no-resume takes it.
  const auto other = (dir / "other.toml").string();
  {
    std::ifstream in(recut);
    std::stringstream text;
    text << in.rdbuf();
    std::string t = text.str();
    t.replace(t.find("hidden = [32, 32, 32]"), 21, "hidden = [32, 32, 16]");
    std::ofstream(other) << t;
  }
  auto refused = run_process({bin("troupe"), "run", other, "--quiet"}, std::chrono::seconds(300));
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.err, Catch::Contains("written with model = 784-32x3-10 relu, but this run has model = 784-32x2-16-10 "
                                          "relu") &&
                              Catch::Contains("--no-resume starts over"));
  CHECK_THAT(refused.err, !Catch::Contains("CheckpointError"));
  auto fresh = run_process({bin("troupe"), "run", other, "--quiet", "--no-resume"}, std::chrono::seconds(300));
  CHECK(fresh.exit_code == 0);
  // Options that cannot work: exit 2, the file's line and the key, nothing written.
  struct Bad {
    std::string pipeline, want;
  };
  const std::vector<Bad> bad = {
      {"stages = 2\nlayers = [[0, 2], [3, 4]]", ":17:10: key 'pipeline.layers': pipeline: layer range 1 is [3, 4)"},
      {"stages = 8", ":16:10: key 'pipeline.stages': pipeline: the model has 4 blocks"},
      {"stages = 2\nmicrobatches = 100", ":17:16: key 'pipeline.microbatches': pipeline: train_limit 1024"},
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const auto path = topology("bad" + std::to_string(i), bad[i].pipeline);
    auto b = run_process({bin("troupe"), "run", path}, std::chrono::seconds(60));
    INFO(b.err);
    CHECK(b.exit_code == 2);
    CHECK_THAT(b.err, Catch::Contains(path + bad[i].want));
    CHECK_THAT(b.err, !Catch::Contains("pipeline of 2 stages"));  // no banner for a run that never starts
    CHECK_FALSE(fs::exists(dir / ("bad" + std::to_string(i))));
  }
  fs::remove_all(dir);
}

TEST_CASE("troupe-bench observe --json: calls observed and not, the head's answers, a head's memory", "[cli][bench]") {
  auto r = run_process({bin("troupe-bench"), "observe", "--json", "--rounds", "1", "--sync-calls", "1000",
                        "--async-calls", "10000", "--actors", "50", "--calls", "20000"},
                       std::chrono::seconds(180));
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::StartsWith("{\"suite\":\"observe\",\"rows\":["));
  for (const char* want : {"\"pattern\":\"sync_1to1\",\"observe\":\"on\"", "\"pattern\":\"async_1to1\",\"observe\":\"off\"",
                           "\"pattern\":\"head_status\"", "\"pattern\":\"head_actor_list\"", "\"pattern\":\"top_frame\"",
                           "\"pattern\":\"head_rss\""})
    CHECK_THAT(r.out, Catch::Contains(want));
  CHECK_THAT(r.out, Catch::Contains("\"actors\":50") && Catch::Contains("\"calls\":20000"));
}
