// Topology files: the example loads as written; every kind of mistake is an
// error naming the file, the line and the key; metrics and plots are written.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "trainers/metrics.hpp"
#include "trainers/topology.hpp"

using namespace troupe;
using dp::parse_topology;
using dp::TopologyError;

namespace {
const std::string kMinimal = "[train]\nstrategy = \"data_parallel\"\n";
const std::string kPipeline = "[train]\nstrategy = \"pipeline\"\n";

std::string slurp(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("the example topology loads with what it says", "[topology]") {
  auto t = dp::load_topology(std::string(TROUPE_SOURCE_DIR) + "/examples/topologies/fashion_mnist_dp.toml");
  CHECK(t.name == "fashion_mnist_dp");
  CHECK(t.address.empty());
  CHECK(t.trainer.replicas == 2);
  CHECK(t.trainer.processes);
  CHECK(t.replica.hidden == std::vector<std::int64_t>{512, 256});
  CHECK(t.replica.batch == 64);
  CHECK(t.replica.epochs == 8);
  CHECK(t.replica.schedule == optim::LrKind::cosine);
  CHECK(t.replica.optimizer == optim::Algorithm::sgd);
  CHECK(t.replica.activation == nn::Activation::relu);
  CHECK(t.replica.precision == compute::DType::f32);
  CHECK(t.replica.warmup_steps == 100);
  CHECK(t.replica.lr == Approx(0.1));
  CHECK(t.trainer.checkpoint_every == 500);
  CHECK(t.trainer.checkpoint_dir == "runs/fashion_mnist_dp/checkpoints");
  CHECK(t.trainer.max_failures == 3);
  CHECK(t.metrics == "jsonl");
  CHECK(t.plot == "svg");
}

TEST_CASE("the GPU example topology puts two replicas on halves of one GPU", "[topology]") {
  auto t = dp::load_topology(std::string(TROUPE_SOURCE_DIR) + "/examples/topologies/fashion_mnist_dp_gpu.toml");
  CHECK(t.name == "fashion_mnist_dp_gpu");
  CHECK(t.trainer.replicas == 2);
  CHECK(t.gpus == 0.5);
  CHECK(t.replica.device == train::DeviceChoice::cuda());
  CHECK(t.trainer.actor_options.gpus_ == 0.5);
  CHECK(t.trainer.checkpoint_dir == "runs/fashion_mnist_dp_gpu/checkpoints");
}

TEST_CASE("the pipeline, hybrid and 3-D example topologies load with what they say", "[topology]") {
  auto p = dp::load_topology(std::string(TROUPE_SOURCE_DIR) + "/examples/topologies/fashion_mnist_pipeline.toml");
  CHECK(p.strategy == train::Strategy::pipeline);
  CHECK(p.replica.hidden.size() == 8);
  CHECK(p.pipeline.stages == 2);
  CHECK(p.pipeline.microbatches == 8);
  CHECK(p.pipeline.schedule == "1f1b");
  CHECK(p.pipeline.split == pipeline::Split::params);
  auto po = p.pipeline_options();
  CHECK(po.replicas == 1);
  CHECK(po.processes);
  CHECK(po.checkpoint_dir == "runs/fashion_mnist_pipeline/checkpoints");
  CHECK(po.actor_options.resources_.at("CPU") == 1);
  auto h = dp::load_topology(std::string(TROUPE_SOURCE_DIR) + "/examples/topologies/fashion_mnist_hybrid.toml");
  CHECK(h.strategy == train::Strategy::hybrid);
  CHECK(h.pipeline_options().replicas == 2);
  CHECK(h.pipeline_options().actor_options.resources_.at("CPU") == 0.5);
  auto d = dp::load_topology(std::string(TROUPE_SOURCE_DIR) + "/examples/topologies/fashion_mnist_3d.toml");
  CHECK(d.strategy == train::Strategy::three_d);
  CHECK(d.replica.tp_blocks == std::vector<std::int64_t>{0, 2});
  auto dpo = d.pipeline_options();
  CHECK(dpo.replicas == 2);
  CHECK(dpo.stages == 2);
  CHECK(dpo.tensor_parallel == 2);
  CHECK(dpo.microbatches == 4);
  // 3d without [pipeline]: its defaults, stages from [parallel].
  auto bare = parse_topology("[train]\nstrategy = \"3d\"\n[parallel]\ndp = 1\npp = 3\ntp = 2\n[model]\nhidden = [64, 64, 64]\n"
                             "tp_blocks = [1]\n",
                             "t.toml");
  CHECK(bare.pipeline_options().stages == 3);
  CHECK(bare.pipeline_options().replicas == 1);
  CHECK(bare.pipeline_options().tensor_parallel == 2);
  // A written schedule and explicit layer ranges.
  auto w = parse_topology(kPipeline + "[pipeline]\nstages = 2\nmicrobatches = 1\nlayers = [[0, 1], [1, 3]]\n"
                                      "schedule = \"\"\"\nstage 0: F0 SEND_F0 RECV_B0 B0 STEP\n"
                                      "stage 1: RECV_F0 F0 B0 SEND_B0 STEP\n\"\"\"\n",
                          "t.toml");
  CHECK(w.pipeline.layers == std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 1}, {1, 3}});
  CHECK_THAT(w.pipeline.schedule, Catch::Contains("stage 1: RECV_F0"));
}

TEST_CASE("a minimal topology takes the defaults", "[topology]") {
  auto t = parse_topology(kMinimal, "min.toml");
  CHECK(t.name == "run");
  CHECK(t.trainer.replicas == 2);
  CHECK(t.replica.optimizer == optim::Algorithm::sgd);
  CHECK(t.replica.schedule == optim::LrKind::constant);
  CHECK(t.replica.activation == nn::Activation::relu);
  CHECK(t.replica.precision == compute::DType::f32);
  CHECK(t.replica.device == train::DeviceChoice::cpu());
  CHECK(t.trainer.max_failures == 3);
}

TEST_CASE("a written schedule in the topology may leave out the stage labels, as troupe schedule reads it", "[topology]") {
  auto t = parse_topology(kPipeline + "[pipeline]\nstages = 2\nmicrobatches = 1\nschedule = \"\"\"\n"
                                      "F0 SEND_F0 RECV_B0 B0 STEP\nRECV_F0 F0 B0 SEND_B0 STEP\n\"\"\"\n",
                          "w.toml");
  CHECK(pipeline::is_written(t.pipeline.schedule));
  CHECK_FALSE(pipeline::is_written(" 1f1b\n"));
}

TEST_CASE("checkpoint.max_failures sets the failure budget; -1 lifts it", "[topology]") {
  CHECK(parse_topology(kMinimal + "[checkpoint]\ndir = \"c\"\nmax_failures = -1\n", "t.toml").trainer.max_failures == -1);
  CHECK(parse_topology(kMinimal + "[checkpoint]\ndir = \"c\"\nmax_failures = 0\n", "t.toml").trainer.max_failures == 0);
}

TEST_CASE("resources.gpus puts each replica on a GPU (a share of one below 1)", "[topology]") {
  auto host = parse_topology(kMinimal, "t.toml");
  CHECK(host.replica.device == train::DeviceChoice::cpu());
  auto t = parse_topology(kMinimal + "[resources]\ngpus = 0.5\ncpus = 1\n", "t.toml");
  CHECK(t.gpus == 0.5);
  CHECK(t.replica.device == train::DeviceChoice::cuda());  // the GPU each worker is given
  CHECK(t.trainer.actor_options.gpus_ == 0.5);
  auto in_process = parse_topology(kMinimal + "processes = false\n[resources]\ngpus = 1\n", "t.toml");
  CHECK(in_process.replica.device == train::DeviceChoice::cuda());
  CHECK(in_process.trainer.actor_options.gpus_ == 0);  // in the driver: nothing to place
  auto half = parse_topology(kMinimal + "precision = \"bf16\"\n[resources]\ngpus = 1\n", "t.toml");
  CHECK(half.replica.precision == compute::DType::bf16);
}

TEST_CASE("topology mistakes name the file, the line and the key; nothing starts", "[topology]") {
  struct Bad {
    std::string text, want;
  };
  const std::vector<Bad> cases = {
      {kMinimal + "[model]\nhiden = [64]\n", "t.toml:4:1: unknown key 'model.hiden'"},
      {kMinimal + "[train.x]\n", "unknown key 'train.x'"},
      {"[trian]\nstrategy = \"data_parallel\"\n", "t.toml:1:2: unknown key 'trian'"},
      {kMinimal + "[optimizer]\nlr = \"fast\"\n", "t.toml:4:6: key 'optimizer.lr': expected a number, got a string"},
      {kMinimal + "[optimizer]\nlr = 0\n", "key 'optimizer.lr': the learning rate must be above 0"},
      {kMinimal + "[optimizer]\nname = \"lion\"\n", "t.toml:4:8: key 'optimizer.name': 'lion' is not one of: sgd, adamw"},
      {kMinimal + "[optimizer]\nname = \"SGD\"\n", "t.toml:4:8: key 'optimizer.name': 'SGD' is not one of: sgd, adamw"},
      {kMinimal + "[optimizer]\nname = 1\n", "t.toml:4:8: key 'optimizer.name': expected a string, got an integer"},
      {kMinimal + "[schedule]\nkind = \"step\"\n",
       "t.toml:4:8: key 'schedule.kind': 'step' is not one of: constant, cosine, linear"},
      {kMinimal + "[model]\nactivation = \"tanh\"\n", "t.toml:4:14: key 'model.activation': 'tanh' is not one of: relu, gelu"},
      {kMinimal + "[model]\ndropout = 1.0\n", "key 'model.dropout': 1 is out of range"},
      {kMinimal + "[model]\nhidden = [64, 0]\n", "key 'model.hidden[1]': 0 is out of range"},
      {kMinimal + "[model]\nhidden = 64\n", "key 'model.hidden': expected an array"},
      {"[train]\nstrategy = \"tensor\"\n", "t.toml:2:12: key 'train.strategy': 'tensor' is not one of: data_parallel, pipeline, hybrid, 3d"},
      // 3-D.
      {"[train]\nstrategy = \"3d\"\n", "t.toml:2:12: key 'train.strategy': \"3d\" needs a [parallel] table (dp, pp, tp)"},
      {"[train]\nstrategy = \"hybrid\"\n[pipeline]\n[parallel]\ntp = 2\n",
       "t.toml:4:1: key 'parallel': a [parallel] table (dp x pp x tp), but train.strategy is \"hybrid\" (say \"3d\")"},
      {kMinimal + "[model]\ntp_blocks = [0]\n", "t.toml:4:13: key 'model.tp_blocks': splits hidden layers over tensor-parallel ranks"},
      {"[train]\nstrategy = \"3d\"\n[parallel]\ntp = 2\n", "t.toml:4:6: key 'parallel.tp': tp = 2 splits the hidden layers model.tp_blocks names, and it names none"},
      {"[train]\nstrategy = \"3d\"\n[parallel]\ntp = 3\n[model]\nhidden = [64, 64]\ntp_blocks = [0]\n",
       "t.toml:7:13: key 'model.tp_blocks': mlp: tp = 3 does not divide hidden layer 0 (width 64)"},
      {"[train]\nstrategy = \"3d\"\n[parallel]\ntp = 2\n[model]\nhidden = [64, 64]\ntp_blocks = [0]\nlayernorm = true\n",
       "key 'model.tp_blocks': mlp: hidden layer 0 is split by tp, so it cannot have layernorm"},
      {"[train]\nstrategy = \"3d\"\n[parallel]\npp = 2\n[pipeline]\nstages = 3\n",
       "t.toml:6:10: key 'pipeline.stages': 3 stages, but parallel.pp is 2"},
      {"[train]\nstrategy = \"3d\"\nreplicas = 2\n[parallel]\n", "key 'train.replicas': 3d takes its replicas from parallel.dp"},
      {"[train]\nstrategy = \"3d\"\n[parallel]\ntp = 0\n", "key 'parallel.tp': 0 is out of range (1 to 64)"},
      // Pipelines.
      {"[train]\nstrategy = \"pipeline\"\n", "key 'train.strategy': \"pipeline\" needs a [pipeline] table"},
      {kMinimal + "[pipeline]\nstages = 2\n", "t.toml:3:1: key 'pipeline': a [pipeline] table, but train.strategy is \"data_parallel\""},
      {kPipeline + "replicas = 2\n[pipeline]\n", "key 'train.replicas': 2 copies of a pipeline is strategy = \"hybrid\""},
      {kPipeline + "accumulation = 4\n[pipeline]\n", "key 'train.accumulation': a pipeline accumulates over its micro-batches"},
      {kPipeline + "[pipeline]\nschedule = \"zb-v\"\n", "key 'pipeline.schedule': 'zb-v' is not one of: gpipe, 1f1b, interleaved, zb-h1"},
      {kPipeline + "[pipeline]\nstages = 0\n", "key 'pipeline.stages': 0 is out of range (1 to 64)"},
      {kPipeline + "[pipeline]\nschedule = \"1f1b\"\nvirtual_stages = 2\n", "key 'pipeline.schedule': schedule \"1f1b\" runs one chunk per stage"},
      {kPipeline + "[pipeline]\nschedule = \"interleaved\"\n", "key 'pipeline.schedule': schedule \"interleaved\" needs virtual_stages = 2 or more"},
      // A stray action: the size it implies is named, not the micro-batch it seems to leave out.
      {kPipeline + "[pipeline]\nstages = 2\nmicrobatches = 1\nschedule = \"\"\"\nstage 0: F0 SEND_F0 RECV_B0 B0 F3 STEP\nstage 1: RECV_F0 F0 B0 SEND_B0 STEP\n\"\"\"\n",
       "the written schedule has 2 stages, 4 micro-batches and 1 virtual stages (from the actions it names), but [pipeline] says 2, 1 and 1"},
      {kPipeline + "precision = \"bf16\"\n[pipeline]\n",
       "t.toml:3:13: key 'train.precision': bf16: pipelines pass float32 activations"},
      {kPipeline + "[pipeline]\nschedule = \"1fb1\"\n", "'1fb1' is not one of: gpipe, 1f1b, interleaved, zb-h1, or a written schedule"},
      {kPipeline + "[pipeline]\nsplit = \"flops\"\n", "key 'pipeline.split': 'flops' is not one of: params, time"},
      {kPipeline + "[pipeline]\nlayers = [[0, 2], 3]\n", "key 'pipeline.layers[1]': expected [first, end)"},
      {kPipeline + "[pipeline]\nlayers = [[0, 2]]\nsplit = \"time\"\n", "give either layers (explicit ranges) or split, not both"},
      // A written schedule that cannot run: refused at load, naming the key, the stage and the action.
      {kPipeline + "[pipeline]\nstages = 2\nmicrobatches = 1\nschedule = \"\"\"\nstage 0: F0 SEND_F0 RECV_B0 B0 STEP\nstage 1: RECV_F0 F0 B0 STEP\n\"\"\"\n",
       "t.toml:6:12: key 'pipeline.schedule': stage 1, action 2 (B0): no SEND_B0"},
      {kPipeline + "[pipeline]\nstages = 3\nmicrobatches = 1\nschedule = \"\"\"\nstage 0: F0 SEND_F0 RECV_B0 B0 STEP\nstage 1: RECV_F0 F0 B0 SEND_B0 STEP\n\"\"\"\n",
       "the written schedule has 2 stages, 1 micro-batches and 1 virtual stages (from the actions it names), but [pipeline] says 3, 1 and 1"},
      {"[train]\nreplicas = 2\n", "key 'train.strategy': missing"},
      {"[model]\nhidden = [8]\n", "no [train] table"},
      {kMinimal + "replicas = 0\n", "t.toml:3:12: key 'train.replicas': 0 is out of range (1 to 64)"},
      {kMinimal + "processes = \"yes\"\n", "key 'train.processes': expected true or false, got a string"},
      {kMinimal + "[checkpoint]\ninterval_steps = 10\n", "key 'checkpoint.interval_steps': set, but checkpoint.dir is not"},
      {kMinimal + "[checkpoint]\ndir = \"c\"\nmax_failures = -2\n", "t.toml:5:16: key 'checkpoint.max_failures': -2 is out of range (-1 to"},
      {kMinimal + "[resources]\ngpus = -1\n", "key 'resources.gpus': -1 is out of range"},
      {kMinimal + "[output]\nmetrics = \"xml\"\n", "key 'output.metrics': 'xml' is not one of: jsonl, csv"},
      {kMinimal + "precision = \"fp8\"\n", "t.toml:3:13: key 'train.precision': 'fp8' is not one of: f32, bf16, f16"},
      // An element type, but not one a run computes in.
      {kMinimal + "precision = \"i32\"\n", "t.toml:3:13: key 'train.precision': 'i32' is not one of: f32, bf16, f16"},
      {kMinimal + "precision = \"bf16\"\n", "key 'train.precision': bf16 needs GPU replicas"},
      {kMinimal + "precision = \"f16\"\n[resources]\ngpus = 1\n[model]\ndropout = 0.1\n",
       "key 'train.precision': f16 takes linear layers and activations only"},
      {kMinimal + "[model]\nclasses = 7\n", "fashion_mnist has 784 inputs and 10 classes"},
      // What only SGD uses, under another optimizer, would be ignored silently.
      {kMinimal + "[optimizer]\nname = \"adamw\"\nmomentum = 0.9\n",
       "t.toml:5:12: key 'optimizer.momentum': applies to sgd only, and the optimizer is adamw"},
      {kMinimal + "[optimizer]\nnesterov = true\nname = \"adamw\"\n", "key 'optimizer.nesterov': applies to sgd only"},
      {kMinimal + "[train\n", "t.toml:3:"},  // a syntax error: TOML++'s message, with the place
      // A bare word: the parser's own words, and what TOML wants instead.
      {kMinimal + "replicas = two\n", "t.toml:3:13: Error while parsing boolean"},
      {kMinimal + "replicas = two\n", "a word as a value needs quotes, as in name = \"mnist\""},
      {kMinimal + "[model]\nactivation = yes\n", "needs quotes"},
      {"model = 3\n" + kMinimal, "t.toml:1:9: key 'model': expected a table, got an integer"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK_THROWS_WITH(parse_topology(c.text, "t.toml"), Catch::Contains(c.want));
  }
  CHECK_THROWS_AS(parse_topology(kMinimal + "[model]\nhiden = [64]\n", "t.toml"), TopologyError);
  CHECK_THROWS_WITH(dp::load_topology("/nonexistent/x.toml"), Catch::Contains("/nonexistent/x.toml: cannot read"));
}

TEST_CASE("metrics as JSON lines or CSV, the plot as SVG, the progress line", "[topology]") {
  const auto dir = std::filesystem::temp_directory_path() / ("troupe-metrics-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  dp::Progress p;
  p.step = 10;
  p.total_steps = 40;
  p.epoch = 0;
  p.loss = 0.5f;
  p.lr = 0.1f;
  p.samples_per_s = 12000;
  p.elapsed_s = 2;
  {
    dp::MetricsWriter j((dir / "m.jsonl").string(), "jsonl", false);
    j.write(p);
    p.evaluated = true;
    p.test_accuracy = 0.75;
    p.step = 20;
    j.write(p);
  }
  auto jl = slurp((dir / "m.jsonl").string());
  CHECK_THAT(jl, Catch::StartsWith("{\"step\":10,\"total_steps\":40,\"epoch\":0,\"loss\":0.5,"));
  CHECK_THAT(jl, Catch::Contains("\"step\":20") && Catch::Contains("\"test_accuracy\":0.75000"));
  CHECK(std::count(jl.begin(), jl.end(), '\n') == 2);
  {
    dp::MetricsWriter c((dir / "m.csv").string(), "csv", false);
    c.write(p);
  }
  {
    dp::MetricsWriter c((dir / "m.csv").string(), "csv", true);  // a resumed run appends, no second header
    c.write(p);
  }
  auto csv = slurp((dir / "m.csv").string());
  CHECK_THAT(csv, Catch::StartsWith("step,total_steps,epoch,loss,lr,samples_per_s,elapsed_s,test_accuracy,test_loss\n20,40,0,"));
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 3);
  dp::write_svg_plot((dir / "p.svg").string(), "a <run>", {{{1, 2.0}, {2, 1.0}}, {{2, 0.5}}});
  auto svg = slurp((dir / "p.svg").string());
  CHECK_THAT(svg, Catch::StartsWith("<svg") && Catch::Contains("<polyline") && Catch::Contains("a &lt;run&gt;") &&
                      Catch::Contains("test accuracy"));
  CHECK_THAT(dp::progress_line(p), Catch::Contains("step 20/40") && Catch::Contains("12.0k samples/s") &&
                                       Catch::Contains("ETA 2s") && Catch::Contains("test acc 0.7500"));
  CHECK_THROWS_AS(dp::MetricsWriter("/nonexistent/dir/m.jsonl", "jsonl", false), Error);
  std::filesystem::remove_all(dir);
}
