// troupe's side of `troupe-bench actors`.
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "runtime/troupe.hpp"
#include "tools/bench/call_batches.hpp"
#include "tools/bench/report.hpp"

namespace troupe::bench {

namespace {

class Echo {
 public:
  int inc(int v) { return v + 1; }
  int size_of(const std::vector<char>& payload) { return static_cast<int>(payload.size()); }
};

Measured sync_pattern(const ActorRef<Echo>& a, int calls, const std::vector<char>* payload) {
  return time_sync(calls, [&](int i) {
    int got = payload ? a.call(&Echo::size_of, *payload).get() : a.call(&Echo::inc, i).get();
    int want = payload ? static_cast<int>(payload->size()) : i + 1;
    if (got != want) throw std::runtime_error(fmt::format("bench: wrong result {} (wanted {})", got, want));
  });
}

std::vector<double> async_batches(const ActorRef<Echo>& a, int calls, int batch) {
  return call_batches(a, &Echo::inc, calls, batch);
}

}  // namespace

std::vector<Row> troupe_actor_rows(const ActorBenchConfig& cfg) {
  Runtime rt({.threads = cfg.threads});
  std::vector<Row> rows;
  auto echo = rt.spawn<Echo>();
  rows.push_back(make_row("troupe", "sync_1to1", sync_pattern(echo, cfg.sync_calls, nullptr)));

  async_batches(echo, cfg.async_calls / 10, cfg.batch);  // warm-up
  auto start = Clock::now();
  auto per_call = async_batches(echo, cfg.async_calls, cfg.batch);
  double secs = micros(Clock::now() - start) / 1e6;
  rows.push_back(make_row("troupe", "async_1to1",
                          {cfg.async_calls / secs, percentile(per_call, 50), percentile(per_call, 99)}));

  std::vector<ActorRef<Echo>> actors;
  for (int i = 0; i < cfg.nton_pairs; ++i) actors.push_back(rt.spawn<Echo>());
  std::vector<std::vector<double>> samples(cfg.nton_pairs);
  const int each = cfg.async_calls / cfg.nton_pairs;
  start = Clock::now();
  std::vector<std::thread> callers;
  for (int i = 0; i < cfg.nton_pairs; ++i)
    callers.emplace_back([&, i] { samples[i] = async_batches(actors[i], each, cfg.batch); });
  for (auto& t : callers) t.join();
  secs = micros(Clock::now() - start) / 1e6;
  std::vector<double> all;
  for (auto& s : samples) all.insert(all.end(), s.begin(), s.end());
  rows.push_back(make_row("troupe", "async_nton",
                          {each * cfg.nton_pairs / secs, percentile(all, 50), percentile(all, 99)}));

  std::vector<char> payload(1024, 'x');
  rows.push_back(make_row("troupe", "sync_1k_arg", sync_pattern(echo, cfg.sync_calls, &payload)));
  return rows;
}

}  // namespace troupe::bench
