// CAF 0.17's side of `troupe-bench actors`: the same four patterns with
// scoped_actor request/receive (sync) and send/receive_for (async).
#include <thread>

#include <caf/all.hpp>

#include "tools/bench/report.hpp"

namespace troupe::bench {

namespace {

caf::behavior echo(caf::event_based_actor*) {
  return {
      [](int v) { return v + 1; },
      [](const std::vector<char>& payload) { return static_cast<int>(payload.size()); },
  };
}

template <class Msg>
Measured sync_pattern(caf::actor_system& sys, const caf::actor& a, int calls, const Msg& msg_of) {
  caf::scoped_actor self{sys};
  return time_sync(calls, [&](int i) {
    self->request(a, caf::infinite, msg_of(i)).receive([](int) {}, [](caf::error&) {});
  });
}

std::vector<double> async_batches(caf::actor_system& sys, const caf::actor& a, int calls, int batch) {
  caf::scoped_actor self{sys};
  std::vector<double> per_call;
  for (int done = 0; done < calls; done += batch) {
    auto t0 = Clock::now();
    for (int i = 0; i < batch; ++i) self->send(a, i);
    int received = 0;
    self->receive_for(received, batch)([](int) {});
    per_call.push_back(micros(Clock::now() - t0) / batch);
  }
  return per_call;
}

}  // namespace

std::vector<Row> caf_actor_rows(const ActorBenchConfig& cfg, std::vector<std::string>&) {
  caf::actor_system_config caf_cfg;
  unsigned threads = cfg.threads ? cfg.threads : std::max(1u, std::thread::hardware_concurrency());
  caf_cfg.set("scheduler.max-threads", static_cast<size_t>(threads));
  caf::actor_system sys{caf_cfg};
  std::vector<Row> rows;
  auto a = sys.spawn(echo);
  rows.push_back(make_row("caf", "sync_1to1", sync_pattern(sys, a, cfg.sync_calls, [](int i) { return i; })));

  async_batches(sys, a, cfg.async_calls / 10, cfg.batch);
  auto start = Clock::now();
  auto per_call = async_batches(sys, a, cfg.async_calls, cfg.batch);
  double secs = micros(Clock::now() - start) / 1e6;
  rows.push_back(
      make_row("caf", "async_1to1", {cfg.async_calls / secs, percentile(per_call, 50), percentile(per_call, 99)}));

  std::vector<caf::actor> actors;
  for (int i = 0; i < cfg.nton_pairs; ++i) actors.push_back(sys.spawn(echo));
  std::vector<std::vector<double>> samples(cfg.nton_pairs);
  const int each = cfg.async_calls / cfg.nton_pairs;
  start = Clock::now();
  std::vector<std::thread> callers;
  for (int i = 0; i < cfg.nton_pairs; ++i)
    callers.emplace_back([&, i] { samples[i] = async_batches(sys, actors[i], each, cfg.batch); });
  for (auto& t : callers) t.join();
  secs = micros(Clock::now() - start) / 1e6;
  std::vector<double> all;
  for (auto& s : samples) all.insert(all.end(), s.begin(), s.end());
  rows.push_back(
      make_row("caf", "async_nton", {each * cfg.nton_pairs / secs, percentile(all, 50), percentile(all, 99)}));

  std::vector<char> payload(1024, 'x');
  rows.push_back(
      make_row("caf", "sync_1k_arg", sync_pattern(sys, a, cfg.sync_calls, [&](int) { return payload; })));
  for (auto& x : actors) caf::anon_send_exit(x, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  return rows;
}

}  // namespace troupe::bench
