#include "trainers/data_parallel.hpp"

#include <filesystem>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "runtime/coll/create.hpp"
#include "runtime/device.hpp"

namespace troupe::dp {

namespace fs = std::filesystem;

DataParallelTrainer::DataParallelTrainer(Runtime& rt, ReplicaConfig cfg, TrainerOptions opts)
    : rt_(rt), cfg_(std::move(cfg)), opts_(std::move(opts)), device_(replica_device(cfg_.device)) {
  if (opts_.replicas < 1) throw UsageError(fmt::format("data parallel: {} replicas (at least 1)", opts_.replicas));
  if (opts_.chunk_steps < 1) throw UsageError("data parallel: chunk_steps must be at least 1");
  if (opts_.checkpoint_every < 0) throw UsageError("data parallel: checkpoint_every cannot be negative");
  if (opts_.max_failures < -1)
    throw UsageError(fmt::format("data parallel: max_failures {}: at least 0, or -1 for no limit", opts_.max_failures));
  // A bad device text was a UsageError naming it (device_), before anything starts.
  if (device_.is_cuda() && opts_.processes && cfg_.device != "cuda")
    throw UsageError(fmt::format("data parallel: device '{}' with replicas in worker processes: each worker trains on "
                                 "the GPU it was given; say \"cuda\"",
                                 cfg_.device));
  // Everything that would fail in every replica fails here, once, before a
  // replica is spawned: the device (replicas in this process), the data
  // files (replicas on this machine: in this process or the embedded cluster).
  check_config(cfg_, {.devices_here = !opts_.processes,
                      .data_here = !opts_.processes || rt_.cluster_address().empty()});
  // A train_limit below one global batch would run no step at all.
  const std::int64_t per_step = opts_.replicas * cfg_.batch * cfg_.accumulation;
  if (cfg_.train_limit > 0 && (cfg_.train_limit + opts_.replicas - 1) / opts_.replicas <
                                  cfg_.batch * cfg_.accumulation)
    throw UsageError(fmt::format(
        "data parallel: train_limit {} ([data] train_limit) is less than one step: {} replicas x batch {} x "
        "accumulation {} = {} examples; no step would run (raise train_limit, or lower replicas, batch or "
        "accumulation)",
        cfg_.train_limit, opts_.replicas, cfg_.batch, cfg_.accumulation, per_step));
  // A GPU replica in a worker process trains on the GPU placement gives its
  // worker: one whole GPU unless the caller asked for a share.
  if (device_.is_cuda() && opts_.processes && opts_.actor_options.gpus_ <= 0) opts_.actor_options.gpus(1);
}

std::string DataParallelTrainer::checkpoint_path() const {
  // Absolute, as the driver sees it: replica 0 writes it and every replica
  // reads it, from processes that may run in another folder (a node daemon's).
  return opts_.checkpoint_dir.empty() ? std::string()
                                      : fs::absolute(fs::path(opts_.checkpoint_dir) / "latest.troupeck").string();
}

namespace {

// Every member's call, each waited for; a failure is rethrown once all have
// settled (a survivor must not still be training when the group is rebuilt):
// a replica's death first, as the cause of its peers' collective errors.
template <class R, class F>
std::vector<R> call_all(Mesh<Replica>& mesh, F&& call, std::chrono::milliseconds limit) {
  std::vector<Ref<R>> refs;
  for (auto& m : mesh.members()) refs.push_back(call(m));
  std::vector<R> out;
  std::exception_ptr first, died;
  for (auto& r : refs) {
    try {
      out.push_back(r.get(limit));
    } catch (const ActorDied&) {
      if (!died) died = std::current_exception();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (died) std::rethrow_exception(died);
  if (first) std::rethrow_exception(first);
  return out;
}

// Waits until every replica answers (a killed one is restarted by the runtime).
void wait_all_alive(Mesh<Replica>& mesh, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (auto& m : mesh.members()) {
    for (;;) {
      try {
        m.call(&Replica::pid).get(std::chrono::seconds(30));
        break;
      } catch (const std::exception& e) {
        if (!m.alive() || std::chrono::steady_clock::now() > until)
          throw Error(fmt::format("data parallel: replica {} did not come back: {}", m.id(), e.what()));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
}

// The error that ends a run whose failure budget is spent: every failure, the
// last cause, how far it got and what is saved.
std::string budget_spent(const std::vector<std::string>& failures, int budget, std::int64_t reached,
                         std::int64_t total, std::int64_t saved, const std::string& ckpt) {
  return fmt::format(
      "data parallel: training stopped after {} failures, {} more than max_failures = {} ([checkpoint] max_failures; "
      "-1: no limit). Last cause: {}. Reached step {} of {}; the last checkpoint ({}) holds step {}. Failures: {}",
      failures.size(), failures.size() - static_cast<std::size_t>(budget), budget,
      failures.back().substr(failures.back().find(": ") + 2), reached, total, ckpt, saved, fmt::join(failures, "; "));
}

}  // namespace

FitResult DataParallelTrainer::fit(const std::function<void(const Progress&)>& on_progress) {
  using namespace std::chrono;
  const auto replicas = static_cast<std::size_t>(opts_.replicas);
  const auto limit = duration_cast<milliseconds>(minutes(30));
  Options o = opts_.actor_options;
  if (opts_.processes) o.process();
  if (!opts_.checkpoint_dir.empty()) o.max_restarts(opts_.max_failures);
  auto mesh = [&]() {
    try {
      return rt_.spawn_mesh<Replica>(replicas, cfg_, o);
    } catch (const Infeasible& e) {
      // Say what the whole run asks for, and what to change.
      std::string each;
      bool gpus = false;
      for (const auto& [k, v] : o.resources_) {
        each += fmt::format("{}{}={}", each.empty() ? "" : ", ", k, v);
        gpus = gpus || (k == "GPU" && v > 0);
      }
      // No GPU anywhere is often this machine's CUDA not loading: say why.
      std::string here;
      if (gpus && devices().gpus.empty()) here = fmt::format(" (this machine: {})", devices().status);
      throw Infeasible(fmt::format(
          "data parallel: {} replicas, each asking for {}, do not fit on this cluster: fewer replicas ([train] "
          "replicas, TrainerOptions::replicas) or less per replica ([resources], TrainerOptions::actor_options) "
          "would. {}{}",
          replicas, each.empty() ? "nothing" : each, e.what(), here));
    }
  }();
  coll::GroupOptions g;
  g.name = cfg_.group;
  if (device_.is_cuda()) {
    // Gradients in device buffers: NCCL when each replica has its own GPU,
    // cuda_local when they share one.
    g.memory = "cuda";
    if (!opts_.processes) g.devices.assign(replicas, device_.index);
  }
  auto form_group = [&]() {
    coll::create_group(rt_, mesh, g);
    call_all<std::int64_t>(mesh, [](auto& m) { return m.call(&Replica::setup); }, limit);
  };
  form_group();
  const std::int64_t per_epoch = mesh[0].call(&Replica::steps_per_epoch).get(limit);
  if (per_epoch == 0)
    throw UsageError(fmt::format("data parallel: the training set does not fill one step of {} replicas x batch {} x "
                                 "accumulation {}: no step would run",
                                 replicas, cfg_.batch, cfg_.accumulation));
  const std::int64_t total = per_epoch * cfg_.epochs;
  if (cfg_.warmup_steps > 0 && cfg_.warmup_steps >= total && total > 0)
    fmt::print(stderr,
               "troupe: warning: warmup_steps = {} ([schedule] warmup_steps) but the run has {} steps: the learning "
               "rate never gets past its warm-up ({} of {} at the end)\n",
               cfg_.warmup_steps, total, static_cast<double>(cfg_.lr) * static_cast<double>(total) /
                                             static_cast<double>(cfg_.warmup_steps), cfg_.lr);
  const std::string ckpt = checkpoint_path();
  FitResult r;
  std::int64_t step = 0, last_ckpt = -1, reached = 0;
  std::vector<std::string> failures;  // "step N: cause", in order
  auto load_all = [&]() {
    auto steps = call_all<std::int64_t>(mesh, [&](auto& m) { return m.call(&Replica::load, ckpt); }, limit);
    return steps.at(0);
  };
  auto save = [&]() {
    fs::create_directories(opts_.checkpoint_dir);
    mesh[0].call(&Replica::save, ckpt).get(limit);  // every replica holds the same state
    last_ckpt = step;
    r.checkpoint = ckpt;
  };
  if (!ckpt.empty()) {
    if (opts_.resume && fs::exists(ckpt)) {
      step = load_all();
      r.resumed_from = step;
      last_ckpt = step;
    } else {
      save();  // step 0: a failure before the first interval restarts from here
    }
  }
  // The test set, split over the replicas, evaluated in parallel.
  auto evaluate = [&]() {
    auto parts = mesh.call(&Replica::evaluate_share, opts_.eval_limit).get(limit);
    EvalStats e;
    double loss = 0;
    for (auto& p : parts) {
      e.correct += p.correct;
      e.total += p.total;
      loss += static_cast<double>(p.loss) * static_cast<double>(p.total);
    }
    e.loss = e.total ? static_cast<float>(loss / static_cast<double>(e.total)) : 0.0f;
    return e;
  };
  std::vector<std::pair<std::int64_t, float>> losses;  // (step, loss)
  Progress last_eval;
  bool eval_at_end = false;
  const auto start = steady_clock::now();
  std::int64_t samples = 0;
  while (step < total) {
    const std::int64_t epoch_end = (step / per_epoch + 1) * per_epoch;
    const std::int64_t n = std::min({opts_.chunk_steps, total - step, epoch_end - step});
    std::vector<std::vector<StepStats>> chunks;
    try {
      chunks = call_all<std::vector<StepStats>>(mesh, [&](auto& m) { return m.call(&Replica::train, n); }, limit);
    } catch (const std::exception& e) {
      failures.push_back(fmt::format("step {}: {}", step, e.what()));
      if (ckpt.empty())
        throw Error(fmt::format("data parallel: training failed at step {} of {}: {} (no checkpoint directory: nothing "
                                "to recover from; set one to survive failures)",
                                step, total, e.what()));
      if (opts_.max_failures >= 0 && r.recoveries >= opts_.max_failures)
        throw Error(budget_spent(failures, opts_.max_failures, reached, total, last_ckpt, ckpt));
      // A replica died (or its group failed): bring every replica back to the
      // last checkpoint in a new group, and go on from there.
      ++r.recoveries;
      wait_all_alive(mesh, seconds(120));
      form_group();
      step = load_all();
      std::erase_if(losses, [&](auto& l) { return l.first > step; });
      continue;
    }
    for (std::int64_t k = 0; k < n; ++k) {
      double loss = 0;
      for (auto& c : chunks) {
        loss += c.at(static_cast<std::size_t>(k)).loss;
        samples += c[static_cast<std::size_t>(k)].samples;
      }
      losses.emplace_back(step + k + 1, static_cast<float>(loss / static_cast<double>(replicas)));
    }
    step += n;
    reached = std::max(reached, step);
    // Every replica applied the same averaged gradients: any difference is a bug, not noise.
    auto hashes = mesh.call(&Replica::param_hash).get(limit);
    for (std::size_t i = 1; i < hashes.size(); ++i)
      if (hashes[i] != hashes[0])
        throw Error(fmt::format("data parallel: replica {} parameters differ from replica 0's after step {}", i, step));
    r.param_hash = hashes[0];
    const bool epoch_done = step % per_epoch == 0;
    Progress p;
    if (epoch_done && opts_.eval_each_epoch) {
      auto e = evaluate();
      p.evaluated = true;
      p.test_accuracy = e.total ? static_cast<double>(e.correct) / static_cast<double>(e.total) : 0;
      p.test_loss = e.loss;
      eval_at_end = step == total;
      last_eval = p;
    }
    if (!ckpt.empty() &&
        (epoch_done || step == total || (opts_.checkpoint_every > 0 && step - last_ckpt >= opts_.checkpoint_every)))
      save();
    if (opts_.after_chunk) opts_.after_chunk(step, mesh);
    if (on_progress) {
      const auto& last = chunks[0].back();
      p.step = step;
      p.total_steps = total;
      p.epoch = last.epoch;
      p.loss = losses.back().second;
      p.lr = last.lr;
      p.elapsed_s = duration<double>(steady_clock::now() - start).count();
      p.samples_per_s = p.elapsed_s > 0 ? static_cast<double>(samples) / p.elapsed_s : 0;
      p.recoveries = r.recoveries;
      on_progress(p);
    }
  }
  r.steps = step;
  for (auto& [s, l] : losses) r.losses.push_back(l);
  r.seconds = duration<double>(steady_clock::now() - start).count();
  r.samples_per_s = r.seconds > 0 ? static_cast<double>(samples) / r.seconds : 0;
  if (eval_at_end) {
    r.accuracy = last_eval.test_accuracy;
    r.test_loss = last_eval.test_loss;
  } else {
    auto e = evaluate();
    r.accuracy = e.total ? static_cast<double>(e.correct) / static_cast<double>(e.total) : 0;
    r.test_loss = e.loss;
  }
  if (r.param_hash == 0) r.param_hash = mesh[0].call(&Replica::param_hash).get(limit);
  return r;
}

}  // namespace troupe::dp
