#include "trainers/topology.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

namespace troupe::train {

namespace {

struct Reader {
  std::string path;
  std::map<std::string, std::string>* where = nullptr;  // "section.key" -> "file:line:col"

  std::string at(const toml::source_region& s) const {
    return s.begin.line ? fmt::format("{}:{}:{}", path, s.begin.line, s.begin.column) : path;
  }
  [[noreturn]] void fail(const toml::node& n, const std::string& key, const std::string& what) const {
    throw TopologyError(fmt::format("{}: key '{}': {}", at(n.source()), key, what));
  }

  static const char* type_name(const toml::node& n) {
    switch (n.type()) {
      case toml::node_type::table: return "a table";
      case toml::node_type::array: return "an array";
      case toml::node_type::string: return "a string";
      case toml::node_type::integer: return "an integer";
      case toml::node_type::floating_point: return "a float";
      case toml::node_type::boolean: return "a boolean";
      default: return "a date/time";
    }
  }

  std::int64_t integer(const toml::node& n, const std::string& key, std::int64_t lo, std::int64_t hi) const {
    auto v = n.value_exact<std::int64_t>();
    if (!v) fail(n, key, fmt::format("expected an integer, got {}", type_name(n)));
    if (*v < lo || *v > hi) fail(n, key, fmt::format("{} is out of range ({} to {})", *v, lo, hi));
    return *v;
  }
  double number(const toml::node& n, const std::string& key, double lo, double hi, bool open_hi = false) const {
    std::optional<double> v;
    if (auto i = n.value_exact<std::int64_t>()) v = static_cast<double>(*i);
    else if (auto f = n.value_exact<double>()) v = *f;
    if (!v) fail(n, key, fmt::format("expected a number, got {}", type_name(n)));
    if (!(*v >= lo) || (open_hi ? !(*v < hi) : !(*v <= hi)))
      fail(n, key, fmt::format("{} is out of range ({} to {}{})", *v, lo, open_hi ? "below " : "", hi));
    return *v;
  }
  bool boolean(const toml::node& n, const std::string& key) const {
    auto v = n.value_exact<bool>();
    if (!v) fail(n, key, fmt::format("expected true or false, got {}", type_name(n)));
    return *v;
  }
  std::string string(const toml::node& n, const std::string& key, std::vector<std::string_view> allowed = {}) const {
    auto v = n.value_exact<std::string>();
    if (!v) fail(n, key, fmt::format("expected a string, got {}", type_name(n)));
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), *v) == allowed.end())
      fail(n, key, fmt::format("'{}' is not one of: {}", *v, fmt::join(allowed, ", ")));
    return *v;
  }
  /// One of `allowed`, by its word.
  template <WordedEnum E, std::size_t N>
  E choice(const toml::node& n, const std::string& key, const std::array<E, N>& allowed) const {
    std::vector<std::string_view> words;
    for (E e : allowed) words.push_back(enum_word(e));
    return *parse_enum<E>(string(n, key, words));
  }
  /// Any value of E, by its word.
  template <WordedEnum E>
  E choice(const toml::node& n, const std::string& key) const {
    return choice(n, key, enum_values<E>());
  }
};

using Setter = std::function<void(const toml::node&, const std::string& key)>;

// Applies each key of `table` (named `section`) through its setter; a key
// without one is an error that lists the known ones.
void apply(const Reader& r, const toml::node& node, const std::string& section, const std::map<std::string, Setter>& keys) {
  const auto* table = node.as_table();
  if (!table) r.fail(node, section, fmt::format("expected a table, got {}", Reader::type_name(node)));
  for (auto&& [k, v] : *table) {
    const std::string key = section + "." + std::string(k.str());
    auto it = keys.find(std::string(k.str()));
    if (it == keys.end()) {
      std::vector<std::string> known;
      for (auto& [name, _] : keys) known.push_back(name);
      throw TopologyError(fmt::format("{}: unknown key '{}' (in [{}]: {})", r.at(k.source()), key, section,
                                      fmt::join(known, ", ")));
    }
    it->second(v, key);
    if (r.where) (*r.where)[key] = r.at(v.source());
  }
}

}  // namespace

Topology parse_topology(const std::string& text, const std::string& path) {
  Topology t;
  Reader r{path};
  r.where = &t.where;
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    // A bare word (replicas = two, name = mnist) reads to the parser as a
    // boolean gone wrong: say what TOML wants instead.
    const std::string_view d = e.description();
    const bool bare_word = d.find("parsing boolean") != std::string_view::npos ||
                           d.find("could not determine value type") != std::string_view::npos;
    throw TopologyError(fmt::format("{}: {}{}", r.at(e.source()), d,
                                    bare_word ? " (a word as a value needs quotes, as in name = \"mnist\"; numbers "
                                                "and true/false do not)"
                                              : ""));
  }
  t.path = path;
  auto& c = t.replica;
  auto& o = t.trainer;
  auto& pl = t.pipeline;
  std::optional<Strategy> strategy;
  const toml::node* train_node = nullptr;
  const toml::node* pipeline_node = nullptr;
  const toml::node* strategy_node = nullptr;
  const toml::node* schedule_node = nullptr;
  const toml::node* replicas_node = nullptr;
  const toml::node* accumulation_node = nullptr;
  const toml::node* parallel_node = nullptr;
  const toml::node* tp_node = nullptr;
  const toml::node* tp_blocks_node = nullptr;
  const toml::node* stages_node = nullptr;
  int par_dp = 1, par_pp = 1, par_tp = 1;
  bool split_given = false;
  std::map<std::string, Setter> sections;
  sections["name"] = [&](const toml::node& n, const std::string& k) { t.name = r.string(n, k); };
  sections["cluster"] = [&](const toml::node& n, const std::string& s) {
    apply(r, n, s, {{"address", [&](auto& v, auto& k) { t.address = r.string(v, k); }}});
  };
  sections["resources"] = [&](const toml::node& n, const std::string& s) {
    apply(r, n, s,
          {{"cpus", [&](auto& v, auto& k) { t.cpus = r.number(v, k, 0, 1024); }},
           {"gpus", [&](auto& v, auto& k) { t.gpus = r.number(v, k, 0, 64); }}});
  };
  sections["model"] = [&](const toml::node& n, const std::string& s) {
    apply(r, n, s,
          {{"inputs", [&](auto& v, auto& k) { c.inputs = r.integer(v, k, 1, 1 << 24); }},
           {"classes", [&](auto& v, auto& k) { c.classes = r.integer(v, k, 2, 1 << 20); }},
           {"activation", [&](auto& v, auto& k) { c.activation = r.choice<nn::Activation>(v, k); }},
           {"dropout", [&](auto& v, auto& k) { c.dropout = static_cast<float>(r.number(v, k, 0, 1, true)); }},
           {"layernorm", [&](auto& v, auto& k) { c.layernorm = r.boolean(v, k); }},
           {"tp_blocks", [&](auto& v, auto& k) {
              const auto* a = v.as_array();
              if (!a) r.fail(v, k, fmt::format("expected an array of hidden layer numbers, got {}", Reader::type_name(v)));
              tp_blocks_node = &v;
              c.tp_blocks.clear();
              for (std::size_t i = 0; i < a->size(); ++i)
                c.tp_blocks.push_back(r.integer(*a->get(i), fmt::format("{}[{}]", k, i), 0, 1 << 20));
            }},
           {"hidden", [&](auto& v, auto& k) {
              const auto* a = v.as_array();
              if (!a) r.fail(v, k, fmt::format("expected an array of layer widths, got {}", Reader::type_name(v)));
              c.hidden.clear();
              for (std::size_t i = 0; i < a->size(); ++i)
                c.hidden.push_back(r.integer(*a->get(i), fmt::format("{}[{}]", k, i), 1, 1 << 20));
            }}});
  };
  sections["data"] = [&](const toml::node& n, const std::string& s) {
    apply(r, n, s,
          {{"dataset", [&](auto& v, auto& k) { r.string(v, k, {"fashion_mnist"}); }},
           {"dir", [&](auto& v, auto& k) { c.data_dir = r.string(v, k); }},
           {"train_limit", [&](auto& v, auto& k) { c.train_limit = r.integer(v, k, 0, 1ll << 40); }},
           {"eval_limit", [&](auto& v, auto& k) { o.eval_limit = r.integer(v, k, 0, 1ll << 40); }}});
  };
  sections["train"] = [&](const toml::node& n, const std::string& s) {
    train_node = &n;
    apply(r, n, s,
          {{"strategy", [&](auto& v, auto& k) {
              strategy = r.choice<Strategy>(v, k);
              strategy_node = &v;
            }},
           {"replicas", [&](auto& v, auto& k) {
              o.replicas = static_cast<int>(r.integer(v, k, 1, 64));
              replicas_node = &v;
            }},
           {"processes", [&](auto& v, auto& k) { o.processes = r.boolean(v, k); }},
           {"batch", [&](auto& v, auto& k) { c.batch = r.integer(v, k, 1, 1 << 20); }},
           {"accumulation", [&](auto& v, auto& k) {
              c.accumulation = static_cast<int>(r.integer(v, k, 1, 1024));
              accumulation_node = &v;
            }},
           {"epochs", [&](auto& v, auto& k) { c.epochs = r.integer(v, k, 1, 100000); }},
           {"seed", [&](auto& v, auto& k) { c.seed = static_cast<std::uint64_t>(r.integer(v, k, 0, INT64_MAX)); }},
           {"chunk_steps", [&](auto& v, auto& k) { o.chunk_steps = r.integer(v, k, 1, 1 << 30); }},
           {"threads", [&](auto& v, auto& k) { c.threads = static_cast<int>(r.integer(v, k, 1, 1024)); }},
           {"precision", [&](auto& v, auto& k) { c.precision = r.choice(v, k, train::precisions); }},
           {"bucket_bytes", [&](auto& v, auto& k) { c.bucket_bytes = r.integer(v, k, 4, 1ll << 34); }}});
  };
  sections["pipeline"] = [&](const toml::node& n, const std::string& s) {
    pipeline_node = &n;
    apply(r, n, s,
          {{"stages", [&](auto& v, auto& k) {
              pl.stages = static_cast<int>(r.integer(v, k, 1, 64));
              stages_node = &v;
            }},
           {"microbatches", [&](auto& v, auto& k) { pl.microbatches = static_cast<int>(r.integer(v, k, 1, 1024)); }},
           {"virtual_stages", [&](auto& v, auto& k) { pl.virtual_stages = static_cast<int>(r.integer(v, k, 1, 16)); }},
           {"schedule", [&](auto& v, auto& k) {
              pl.schedule = r.string(v, k);
              schedule_node = &v;
              if (!pipeline::is_written(pl.schedule)) {
                std::vector<std::string_view> names(EnumWords<pipeline::Kind>::words.begin(),
                                                    EnumWords<pipeline::Kind>::words.end());
                names.push_back("or a written schedule (a line per stage)");
                r.string(v, k, names);
              }
            }},
           {"split", [&](auto& v, auto& k) {
              pl.split = r.choice(v, k, std::array{pipeline::Split::params, pipeline::Split::time});
              split_given = true;
            }},
           {"layers", [&](auto& v, auto& k) {
              const auto* a = v.as_array();
              if (!a) r.fail(v, k, fmt::format("expected an array of [first, end) block ranges, got {}", Reader::type_name(v)));
              pl.layers.clear();
              for (std::size_t i = 0; i < a->size(); ++i) {
                const auto* pair = a->get(i)->as_array();
                if (!pair || pair->size() != 2)
                  r.fail(*a->get(i), fmt::format("{}[{}]", k, i), "expected [first, end): two block numbers");
                pl.layers.emplace_back(r.integer(*pair->get(0), fmt::format("{}[{}][0]", k, i), 0, 1 << 20),
                                       r.integer(*pair->get(1), fmt::format("{}[{}][1]", k, i), 0, 1 << 20));
              }
            }}});
  };
  sections["parallel"] = [&](const toml::node& n, const std::string& s) {
    parallel_node = &n;
    apply(r, n, s,
          {{"dp", [&](auto& v, auto& k) { par_dp = static_cast<int>(r.integer(v, k, 1, 64)); }},
           {"pp", [&](auto& v, auto& k) { par_pp = static_cast<int>(r.integer(v, k, 1, 64)); }},
           {"tp", [&](auto& v, auto& k) {
              par_tp = static_cast<int>(r.integer(v, k, 1, 64));
              tp_node = &v;
            }}});
  };
  const toml::node* sgd_only = nullptr;  // momentum > 0 or nesterov = true: what only sgd uses
  std::string sgd_only_key;
  sections["optimizer"] = [&](const toml::node& n, const std::string& s) {
    apply(r, n, s,
          {{"name", [&](auto& v, auto& k) { c.optimizer = r.choice<optim::Algorithm>(v, k); }},
           {"lr", [&](auto& v, auto& k) {
              c.lr = static_cast<float>(r.number(v, k, 0, 100));
              if (c.lr <= 0) r.fail(v, k, "the learning rate must be above 0");
            }},
           {"momentum", [&](auto& v, auto& k) {
              c.momentum = static_cast<float>(r.number(v, k, 0, 1, true));
              if (c.momentum > 0) sgd_only = &v, sgd_only_key = k;
            }},
           {"weight_decay", [&](auto& v, auto& k) { c.weight_decay = static_cast<float>(r.number(v, k, 0, 10)); }},
           {"nesterov", [&](auto& v, auto& k) {
              c.nesterov = r.boolean(v, k);
              if (c.nesterov) sgd_only = &v, sgd_only_key = k;
            }},
           {"clip_norm", [&](auto& v, auto& k) { c.clip_norm = static_cast<float>(r.number(v, k, 0, 1e9)); }}});
  };
  sections["schedule"] = [&](const toml::node& n, const std::string& s) {
    apply(r, n, s,
          {{"kind", [&](auto& v, auto& k) { c.schedule = r.choice<optim::LrKind>(v, k); }},
           {"warmup_steps", [&](auto& v, auto& k) { c.warmup_steps = r.integer(v, k, 0, 1ll << 40); }},
           {"min_lr", [&](auto& v, auto& k) { c.min_lr = static_cast<float>(r.number(v, k, 0, 100)); }}});
  };
  sections["checkpoint"] = [&](const toml::node& n, const std::string& s) {
    apply(r, n, s,
          {{"dir", [&](auto& v, auto& k) { o.checkpoint_dir = r.string(v, k); }},
           {"interval_steps", [&](auto& v, auto& k) { o.checkpoint_every = r.integer(v, k, 0, 1ll << 40); }},
           {"resume", [&](auto& v, auto& k) { o.resume = r.boolean(v, k); }},
           {"max_failures", [&](auto& v, auto& k) {
              o.max_failures = static_cast<int>(r.integer(v, k, -1, 1 << 30));
            }}});
  };
  sections["output"] = [&](const toml::node& n, const std::string& s) {
    apply(r, n, s,
          {{"dir", [&](auto& v, auto& k) { t.out_dir = r.string(v, k); }},
           {"metrics", [&](auto& v, auto& k) { t.metrics = r.string(v, k, {"jsonl", "csv"}); }},
           {"plot", [&](auto& v, auto& k) { t.plot = r.string(v, k, {"svg", "none"}); }}});
  };
  for (auto&& [k, v] : root) {
    auto it = sections.find(std::string(k.str()));
    if (it == sections.end()) {
      std::vector<std::string> known;
      for (auto& [name, _] : sections) known.push_back(name);
      throw TopologyError(fmt::format("{}: unknown key '{}' (at the top: {})", r.at(k.source()), k.str(), fmt::join(known, ", ")));
    }
    it->second(v, std::string(k.str()));
  }
  // Across keys.
  if (!train_node) throw TopologyError(fmt::format("{}: no [train] table (it names the strategy)", path));
  if (!strategy)
    r.fail(*train_node, "train.strategy", "missing (\"data_parallel\", \"pipeline\", \"hybrid\" or \"3d\")");
  t.strategy = *strategy;
  if (t.strategy == Strategy::data_parallel && pipeline_node)
    r.fail(*pipeline_node, "pipeline", "a [pipeline] table, but train.strategy is \"data_parallel\" (say \"pipeline\", \"hybrid\" or \"3d\")");
  if (parallel_node && t.strategy != Strategy::three_d)
    r.fail(*parallel_node, "parallel",
           fmt::format("a [parallel] table (dp x pp x tp), but train.strategy is \"{}\" (say \"3d\")", t.strategy));
  if (tp_blocks_node && !c.tp_blocks.empty() && t.strategy != Strategy::three_d)
    r.fail(*tp_blocks_node, "model.tp_blocks",
           fmt::format("splits hidden layers over tensor-parallel ranks, which train.strategy \"{}\" has none of (say "
                       "\"3d\" with [parallel] tp)",
                       t.strategy));
  if (t.strategy == Strategy::three_d) {
    // [parallel] gives the mesh: dp replicas of a pp-stage pipeline whose
    // stages are split over tp ranks; [pipeline] the rest (optional).
    if (!parallel_node)
      r.fail(*strategy_node, "train.strategy", "\"3d\" needs a [parallel] table (dp, pp, tp)");
    if (stages_node && pl.stages != par_pp)
      r.fail(*stages_node, "pipeline.stages",
             fmt::format("{} stages, but parallel.pp is {} (3d takes the stages from [parallel]: leave this out)",
                         pl.stages, par_pp));
    if (replicas_node)
      r.fail(*replicas_node, "train.replicas", "3d takes its replicas from parallel.dp: leave this out");
    if (par_tp > 1 && c.tp_blocks.empty())
      r.fail(tp_node ? *tp_node : *parallel_node, "parallel.tp",
             fmt::format("tp = {} splits the hidden layers model.tp_blocks names, and it names none (e.g. tp_blocks = "
                         "[0] splits hidden layer 0)",
                         par_tp));
    try {
      for (auto i : c.tp_blocks)
        if (i < 0) throw UsageError(fmt::format("{} is not a hidden layer", i));
      nn::tp_split_layers(train::mlp_spec(c), par_tp);
    } catch (const UsageError& e) {
      r.fail(tp_blocks_node ? *tp_blocks_node : *parallel_node, "model.tp_blocks", e.what());
    }
    pl.stages = par_pp;
    pl.tensor_parallel = par_tp;
    o.replicas = par_dp;
  }
  if (t.strategy != Strategy::data_parallel) {
    if (!pipeline_node && t.strategy != Strategy::three_d)
      r.fail(*strategy_node, "train.strategy", fmt::format("\"{}\" needs a [pipeline] table (stages, microbatches, schedule)", t.strategy));
    if (t.strategy == Strategy::pipeline && replicas_node && o.replicas > 1)
      r.fail(*replicas_node, "train.replicas",
             fmt::format("{} copies of a pipeline is strategy = \"hybrid\" (\"pipeline\" runs one)", o.replicas));
    if (t.strategy == Strategy::pipeline) o.replicas = 1;
    if (c.precision != compute::DType::f32)
      throw TopologyError(fmt::format("{}: key 'train.precision': {}: pipelines pass float32 activations (f32 only for "
                                      "now)",
                                      t.where.count("train.precision") ? t.where["train.precision"] : path,
                                      c.precision));
    if (accumulation_node && c.accumulation != 1)
      r.fail(*accumulation_node, "train.accumulation",
             "a pipeline accumulates over its micro-batches: set pipeline.microbatches instead");
    if (split_given && !pl.layers.empty())
      r.fail(*pipeline_node, "pipeline.split", "give either layers (explicit ranges) or split, not both");
    const toml::node& pipeline_or_strategy = pipeline_node ? *pipeline_node : *strategy_node;
    // The schedule is generated or read, and simulated, now: a schedule that
    // cannot run is refused naming the key.
    try {
      if (pipeline::is_written(pl.schedule)) {
        auto sched = pipeline::parse(pl.schedule);
        // Sizes first: a stray action (F7 of 4 micro-batches, a chunk that
        // does not exist) shows as a size that differs from [pipeline]'s.
        if (sched.stages != pl.stages || sched.microbatches != pl.microbatches || sched.virtual_stages != pl.virtual_stages)
          throw pipeline::ScheduleError(fmt::format("the written schedule has {} stages, {} micro-batches and {} virtual "
                                                    "stages (from the actions it names), but [pipeline] says {}, {} and {}",
                                                    sched.stages, sched.microbatches, sched.virtual_stages, pl.stages,
                                                    pl.microbatches, pl.virtual_stages));
        pipeline::check(sched);
      } else {
        const auto kind = pipeline::parse_kind(pl.schedule);
        if (kind != pipeline::Kind::interleaved && pl.virtual_stages != 1)
          throw pipeline::ScheduleError(fmt::format("schedule \"{}\" runs one chunk per stage; virtual_stages = {} needs "
                                                    "schedule = \"interleaved\"",
                                                    pl.schedule, pl.virtual_stages));
        if (kind == pipeline::Kind::interleaved && pl.virtual_stages < 2)
          throw pipeline::ScheduleError("schedule \"interleaved\" needs virtual_stages = 2 or more (chunks per stage; "
                                        "with 1 it is 1f1b)");
        pipeline::check(pipeline::generate(kind, pl.stages, pl.microbatches, pl.virtual_stages));
      }
    } catch (const pipeline::ScheduleError& e) {
      if (schedule_node) r.fail(*schedule_node, "pipeline.schedule", e.what());
      r.fail(pipeline_or_strategy, "pipeline", e.what());
    }
  }
  if (sgd_only && c.optimizer != optim::Algorithm::sgd)
    r.fail(*sgd_only, sgd_only_key,
           fmt::format("applies to sgd only, and the optimizer is {} (remove it, or name = \"sgd\")", c.optimizer));
  if (c.schedule == optim::LrKind::constant && c.min_lr > 0)
    throw TopologyError(fmt::format("{}: key 'schedule.min_lr': a constant schedule has no minimum", path));
  if (c.min_lr > c.lr)
    throw TopologyError(fmt::format("{}: key 'schedule.min_lr': {} is above optimizer.lr {}", path, c.min_lr, c.lr));
  if (o.checkpoint_every > 0 && o.checkpoint_dir.empty())
    throw TopologyError(fmt::format("{}: key 'checkpoint.interval_steps': set, but checkpoint.dir is not", path));
  if (c.classes != 10 || c.inputs != 784)
    throw TopologyError(fmt::format("{}: key 'model': fashion_mnist has 784 inputs and 10 classes (got {} and {})", path,
                                    c.inputs, c.classes));
  if (t.name.empty()) t.name = "run";
  t.trainer.job_name = t.name;
  if (t.gpus > 0) c.device = DeviceChoice::cuda();  // each replica trains on its GPU (a share of one when gpus < 1)
  if (c.precision != compute::DType::f32 && t.gpus <= 0)
    throw TopologyError(fmt::format("{}: key 'train.precision': {} needs GPU replicas (resources.gpus > 0); the host "
                                    "computes in f32",
                                    t.where.count("train.precision") ? t.where["train.precision"] : path, c.precision));
  if (c.precision != compute::DType::f32 && (c.dropout > 0 || c.layernorm))
    throw TopologyError(fmt::format("{}: key 'train.precision': {} takes linear layers and activations only (set "
                                    "model.dropout = 0 and model.layernorm = false)",
                                    path, c.precision));
  if (o.processes) {
    o.actor_options.cpus(t.cpus);
    if (t.gpus > 0) o.actor_options.gpus(t.gpus);
  }
  return t;
}

pipeline::PipelineOptions Topology::pipeline_options() const {
  pipeline::PipelineOptions p = pipeline;
  p.replicas = strategy == Strategy::hybrid || strategy == Strategy::three_d ? trainer.replicas : 1;
  p.tensor_parallel = strategy == Strategy::three_d ? pipeline.tensor_parallel : 1;
  p.processes = trainer.processes;
  p.chunk_steps = trainer.chunk_steps;
  p.job_name = trainer.job_name;
  p.eval_limit = trainer.eval_limit;
  p.eval_each_epoch = trainer.eval_each_epoch;
  p.actor_options = trainer.actor_options;
  p.checkpoint_dir = trainer.checkpoint_dir;
  p.checkpoint_every = trainer.checkpoint_every;
  p.resume = trainer.resume;
  p.max_failures = trainer.max_failures;
  return p;
}

Topology load_topology(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw TopologyError(fmt::format("{}: cannot read the topology file: {}", path, std::strerror(errno)));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_topology(ss.str(), path);
}

}  // namespace troupe::train
