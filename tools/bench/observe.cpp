// `troupe-bench observe`: what watching costs and how the head holds up.
//  - actor calls with observing on and off (the per-call counters, the queue
//    depth, the 1-in-8 latency samples): two actors of one runtime, one
//    observed (Options::observe), called in rotating bursts, the observed one
//    also with a `troupe trace` session recording (runtime/trace.hpp);
//  - the head's status and actor-list answers with 1,000 actors in its
//    directory (time, size), and `troupe top`'s frame built from them;
//  - a head daemon's resident memory while a driver on its cluster makes
//    millions of calls to process actors that report their counters to it
//    every second (flat: the head keeps bounded state).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "runtime/cluster/client.hpp"
#include "runtime/cluster/connect.hpp"
#include "runtime/trace.hpp"
#include "runtime/troupe.hpp"
#include "tools/bench/call_batches.hpp"
#include "tools/bench/report.hpp"
#include "tools/cli/top_command.hpp"

extern char** environ;

namespace troupe::bench {

class ObservedEcho {
 public:
  int inc(int v) { return v + 1; }
};

}  // namespace troupe::bench
TROUPE_ACTOR(troupe::bench::ObservedEcho, inc);

namespace troupe::bench {

namespace {

// Every row has every column (the table takes its columns from the first
// row): what does not apply to a row is "-".
Row observe_row(const std::string& pattern, std::vector<std::pair<std::string, Value>> given) {
  static const char* const keys[] = {"observe", "calls_per_s", "actors", "p50_ms", "p95_ms", "bytes",
                                     "calls", "rss_before_mib", "rss_after_mib", "growth_pct"};
  Row r;
  r.set("system", std::string("troupe")).set("pattern", pattern);
  for (const char* k : keys) {
    Value v = std::string("-");
    for (auto& [gk, gv] : given)
      if (gk == k) v = gv;
    r.set(k, v);
  }
  return r;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Calls to two actors of one runtime, one observed and one not: per round,
// an interval of `sync_calls` then `async_calls` calls for each of off,
// observed, and observed while a `troupe trace` session records, in an
// order that rotates with the round. The traced interval is one session, as
// `troupe trace` takes one: a thread keeps every call until an eighth of its
// buffer is full and samples them after that, so a session that lasts a few
// milliseconds would be all start. Returns the round's calls per second.
struct Rates {
  double sync_off = 0, sync_on = 0, async_off = 0, async_on = 0;
  double sync_traced = 0, async_traced = 0;  // observed, with `troupe trace` recording
};
Rates call_rates(const ObserveConfig& cfg, int round) {
  Runtime rt({.threads = cfg.threads});
  auto off = rt.spawn<ObservedEcho>(Options{}.observe(false));
  auto on = rt.spawn<ObservedEcho>(Options{}.observe(true));
  Rates r;
  double t_sync[3] = {0, 0, 0}, t_async[3] = {0, 0, 0};
  for (auto* a : {&off, &on}) call_batches(*a, &ObservedEcho::inc, cfg.async_calls / 10, cfg.batch);  // warm-up
  for (int k = 0; k < 3; ++k) {
    const int mode = (round + k) % 3;  // 0 off, 1 observed, 2 observed and traced
    auto& a = mode ? on : off;
    if (mode == 2 && !trace::start(std::chrono::seconds(60))) throw std::runtime_error("observe: a trace is running");
    auto t0 = Clock::now();
    for (int i = 0; i < cfg.sync_calls; ++i)
      if (a.call(&ObservedEcho::inc, i).get() != i + 1) throw std::runtime_error("observe: wrong answer");
    auto t1 = Clock::now();
    call_batches(a, &ObservedEcho::inc, cfg.async_calls, cfg.batch);
    auto t2 = Clock::now();
    if (mode == 2) {
      const auto taken = trace::take("bench");
      if (taken.events.empty()) throw std::runtime_error("observe: the trace recorded nothing");
    }
    t_sync[mode] = micros(t1 - t0) / 1e6;
    t_async[mode] = micros(t2 - t1) / 1e6;
  }
  const double ns = cfg.sync_calls, na = cfg.async_calls;
  r.sync_off = ns / t_sync[0], r.sync_on = ns / t_sync[1], r.sync_traced = ns / t_sync[2];
  r.async_off = na / t_async[0], r.async_on = na / t_async[1], r.async_traced = na / t_async[2];
  return r;
}

std::uint64_t rss_of(pid_t pid) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  std::uint64_t kb = 0;
  while (st >> key) {
    if (key == "VmRSS:") {
      st >> kb;
      return kb * 1024;
    }
    std::getline(st, key);
  }
  return 0;
}

// A head daemon as a child process, its stdout read until it listens.
struct HeadProcess {
  pid_t pid = -1;
  std::string address, token_file;
  explicit HeadProcess(const std::string& dir) {
    const auto exe = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "troupe-daemon";
    if (!std::filesystem::exists(exe)) throw std::runtime_error(fmt::format("observe: no {} to run the head", exe.string()));
    token_file = dir + "/cluster.token";
    const std::string out = dir + "/head.out";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> args{exe.string(), "--head", "--port", "0", "--token-file", token_file};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("observe: cannot start the head");
    posix_spawn_file_actions_destroy(&fa);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (address.empty() && Clock::now() < deadline) {
      std::ifstream in(out);
      std::string line;
      while (std::getline(in, line))
        if (auto at = line.find("listening on "); at != std::string::npos)
          address = line.substr(at + 13, line.find(' ', at + 13) - at - 13);
      if (address.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling its output file
    }
    if (address.empty()) throw std::runtime_error("observe: the head did not start");
  }
  ~HeadProcess() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

}  // namespace

std::vector<Row> observe_rows(const ObserveConfig& cfg, std::vector<std::string>& notes) {
  std::vector<Row> rows;
  // 1. Calls, observed and not.
  std::vector<double> sync_on, sync_off, async_on, async_off, sync_traced, async_traced;
  for (int r = 0; r < cfg.rounds; ++r) {
    const auto x = call_rates(cfg, r);
    if (std::getenv("TROUPE_BENCH_VERBOSE"))
      fmt::print(stderr, "round {}: sync off {:.0f} on {:.0f} traced {:.0f}  async off {:.0f} on {:.0f} traced {:.0f}\n",
                 r, x.sync_off, x.sync_on, x.sync_traced, x.async_off, x.async_on, x.async_traced);
    sync_off.push_back(x.sync_off), sync_on.push_back(x.sync_on), sync_traced.push_back(x.sync_traced);
    async_off.push_back(x.async_off), async_on.push_back(x.async_on), async_traced.push_back(x.async_traced);
  }
  auto call_row = [&](const char* pattern, const char* observe, double rate) {
    rows.push_back(observe_row(pattern, {{"observe", std::string(observe)}, {"calls_per_s", rate}}));
  };
  call_row("sync_1to1", "off", median(sync_off));
  call_row("sync_1to1", "on", median(sync_on));
  call_row("sync_1to1", "on+trace", median(sync_traced));
  call_row("async_1to1", "off", median(async_off));
  call_row("async_1to1", "on", median(async_on));
  call_row("async_1to1", "on+trace", median(async_traced));
  std::vector<double> sync_ratio, async_ratio, sync_tr, async_tr;
  for (std::size_t i = 0; i < sync_on.size(); ++i) {
    sync_ratio.push_back((sync_on[i] / sync_off[i] - 1) * 100);
    async_ratio.push_back((async_on[i] / async_off[i] - 1) * 100);
    sync_tr.push_back((sync_traced[i] / sync_off[i] - 1) * 100);
    async_tr.push_back((async_traced[i] / async_off[i] - 1) * 100);
  }
  auto spread = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return fmt::format("{:+.1f}% (rounds {:+.1f}% to {:+.1f}%)", v[v.size() / 2], v.front(), v.back());
  };
  notes.push_back(fmt::format("observe on vs off, the median of {} rounds, each {} sync then {} async calls to each "
                              "of two actors in one runtime (one observed), in rotating order: sync {}, async {} "
                              "(goal: at most 2% lower)",
                              cfg.rounds, cfg.sync_calls, cfg.async_calls, spread(sync_ratio), spread(async_ratio)));
  notes.push_back(fmt::format("observed and traced (the same calls in one `troupe trace` session: a thread keeps every "
                              "call until an eighth of its buffer is full, then samples them) vs off: sync {}, async {} "
                              "(goal: at most 2% lower; tracing costs only while a trace is taken)",
                              spread(sync_tr), spread(async_tr)));

  // 2. The head's answers with 1,000 actors in its directory, and top's frame.
  {
    auto io = std::make_shared<boost::asio::io_context>();
    auto link = cluster::ClusterClient::embedded(io);
    for (int i = 0; i < cfg.actors; ++i) {
      cluster::PlaceRequest req;
      req.class_name = "troupe::bench::ObservedEcho";
      req.name = fmt::format("echo/{}", i);
      auto placed = link->place(req);
      link->report(placed.actor_id, 1 /* ALIVE */, 1000 + static_cast<std::uint32_t>(i), "", 0);
    }
    const auto addr = cluster::parse_address(link->head_address());
    std::vector<double> status_ms, actors_ms, frame_ms;
    std::size_t status_bytes = 0, actor_bytes = 0;
    cluster::ClusterView view;
    std::vector<cluster::ActorView> actors;
    for (int i = 0; i < 30; ++i) {
      auto t0 = Clock::now();
      view = cluster::query_status(addr, link->token(), std::chrono::seconds(5), &status_bytes);
      auto t1 = Clock::now();
      actors = cluster::query_actors(addr, link->token(), std::chrono::seconds(5), &actor_bytes);
      auto t2 = Clock::now();
      status_ms.push_back(micros(t1 - t0) / 1e3);
      actors_ms.push_back(micros(t2 - t1) / 1e3);
    }
    if (actors.size() < static_cast<std::size_t>(cfg.actors))
      throw std::runtime_error(fmt::format("observe: the head lists {} actors, not {}", actors.size(), cfg.actors));
    for (int i = 0; i < 100; ++i) {
      cli::TopState st;
      st.pane = 1;
      st.sort = static_cast<std::size_t>(i % 5);
      auto t0 = Clock::now();
      auto lines = cli::top_frame(view, actors, st, 160, 50);
      frame_ms.push_back(micros(Clock::now() - t0) / 1e3);
      if (lines.size() < 10) throw std::runtime_error("observe: top drew no rows");
    }
    auto snap_row = [&](const char* what, std::vector<double>& ms, std::size_t bytes) {
      rows.push_back(observe_row(what, {{"actors", static_cast<std::int64_t>(cfg.actors)},
                                        {"p50_ms", percentile(ms, 50)},
                                        {"p95_ms", percentile(ms, 95)},
                                        {"bytes", static_cast<std::int64_t>(bytes)}}));
    };
    snap_row("head_status", status_ms, status_bytes);
    snap_row("head_actor_list", actors_ms, actor_bytes);
    snap_row("top_frame", frame_ms, 0);
    notes.push_back(fmt::format("head at {} actors: status + actor list p95 {:.1f} ms, {:.0f} KiB (goal: under 50 ms "
                                "and 1 MiB); top frame p95 {:.1f} ms (goal: under 100 ms)",
                                cfg.actors, percentile(status_ms, 95) + percentile(actors_ms, 95),
                                (status_bytes + actor_bytes) / 1024.0, percentile(frame_ms, 95)));
    link->close();
  }

  // 3. A head daemon's memory under a long run of calls.
  if (cfg.head_calls > 0) {
    const auto dir = std::filesystem::temp_directory_path() / fmt::format("troupe-observe-{}", ::getpid());
    std::filesystem::create_directories(dir);
    {
      HeadProcess head(dir.string());
      std::string token;
      std::getline(std::ifstream(head.token_file), token);
      Runtime rt({.threads = cfg.threads, .address = head.address, .token = token});
      std::vector<ActorRef<ObservedEcho>> echoes;
      for (int i = 0; i < 2; ++i) echoes.push_back(rt.spawn<ObservedEcho>(Options{}.process()));
      for (auto& e : echoes) e.call(&ObservedEcho::inc, 0).get(std::chrono::seconds(30));
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // their first counters reach the head
      const std::uint64_t before = rss_of(head.pid);
      std::uint64_t peak = before;
      const auto t0 = Clock::now();
      std::int64_t done = 0;
      while (done < cfg.head_calls) {
        const int n = static_cast<int>(std::min<std::int64_t>(200000, cfg.head_calls - done));
        std::vector<std::thread> callers;
        for (auto& e : echoes) callers.emplace_back([&, e] { call_batches(e, &ObservedEcho::inc, n / 2, cfg.batch); });
        for (auto& t : callers) t.join();
        done += n / 2 * 2;
        peak = std::max(peak, rss_of(head.pid));
      }
      const double secs = micros(Clock::now() - t0) / 1e6;
      const std::uint64_t after = rss_of(head.pid);
      rows.push_back(observe_row("head_rss", {{"calls", done},
                                              {"calls_per_s", done / secs},
                                              {"rss_before_mib", before / 1048576.0},
                                              {"rss_after_mib", after / 1048576.0},
                                              {"growth_pct", before ? (static_cast<double>(after) / before - 1) * 100 : 0.0}}));
      notes.push_back(fmt::format("head memory after {} calls to 2 process actors reporting every second: {:.1f} -> "
                                  "{:.1f} MiB (peak {:.1f}), {:+.1f}% (goal: flat within 5%)",
                                  done, before / 1048576.0, after / 1048576.0, peak / 1048576.0,
                                  before ? (static_cast<double>(after) / before - 1) * 100 : 0.0));
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  return rows;
}

}  // namespace troupe::bench
