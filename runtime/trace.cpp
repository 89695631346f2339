#include "runtime/trace.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <unordered_set>

#include <fmt/format.h>

#include "runtime/context.hpp"
#include "runtime/detail/json.hpp"

namespace troupe::trace {

using troupe::detail::json_string;

namespace detail {
std::atomic<std::int64_t> g_until_ns{0};
std::atomic<std::uint64_t> g_session{0};
std::atomic<std::int64_t> g_start_ns{0};
}

namespace {

constexpr std::uint64_t kThreadTrack = 1ull << 63;
constexpr std::uint64_t kGroupTrack = 1ull << 62;

struct Raw {
  std::int64_t ts, dur;
  std::uint64_t track, flow;
  const char* name;
  std::int64_t arg;
  Kind kind;
};

// One thread's events of one session. Only its thread writes; take() reads
// the first `n` (published with release) once the session is over, so the
// two never touch the same slot.
struct Ring {
  std::unique_ptr<Raw[]> slots;  // kThreadEvents, default-initialised: pages are touched only as events land
  std::atomic<std::size_t> n{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> session{0};
  std::uint64_t track = 0;  // the thread's own track
  bool main_thread = false;  // the process's first thread (a driver's main())
  // Flow ids this thread gives its sends: pid (22 bits) | thread (10) |
  // a count (20: more than a session's events), unique across processes
  // and exact as a JSON number (under 2^53), which is how viewers read it.
  std::uint64_t flow_base = 0;
  std::uint64_t flows = 0;  // given this session
  // Calls are kept 1 in 2^shift: the shift grows while the buffer fills
  // faster than an even spread over the window, and shrinks when it lags.
  // After each call kept, sample() (trace.hpp) leaves out the next
  // 2^shift - 1; `skips` sums what it was told to leave out, so the calls
  // left out are `skips` less what it has still to leave out.
  std::uint32_t shift = 0;
  detail::Sampling sampling;
  std::atomic<std::uint64_t> skips{0};
  std::atomic<std::uint32_t> widest{1};  // the largest 2^shift this session, for take()
  std::atomic<bool> ended{false};  // its thread is gone: take() frees it once read
};

struct Recorder {
  std::mutex mu;
  std::vector<std::shared_ptr<Ring>> rings;  // kept past their thread's end: take() reads them
  std::map<std::uint64_t, std::string> names;  // track -> name, this session
  std::unordered_set<std::string> interned;
  std::uint64_t next_thread = 1;
  bool taken = true;  // the last session was taken: a new one may start
};

Recorder& rec() {
  static auto* r = new Recorder();  // never destroyed: threads may record during exit
  return *r;
}

// The calling thread's ring, registered with the recorder at first use and
// marked ended when the thread exits.
struct RingHolder {
  std::shared_ptr<Ring> ring = std::make_shared<Ring>();
  RingHolder() {
    auto& R = rec();
    std::lock_guard lock(R.mu);
    ring->track = kThreadTrack | R.next_thread++;
    ring->main_thread = ::syscall(SYS_gettid) == ::getpid();
    ring->flow_base = (static_cast<std::uint64_t>(::getpid()) << 30) | ((R.next_thread & 0x3ff) << 20);
    R.rings.push_back(ring);
    detail::t_sampling = &ring->sampling;
  }
  ~RingHolder() {
    detail::t_sampling = nullptr;
    ring->ended.store(true, std::memory_order_release);
  }
};

Ring& ring() {
  thread_local RingHolder mine;
  return *mine.ring;
}

inline void add(std::atomic<std::uint64_t>& a) noexcept {  // one writer: its thread
  a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// This thread's buffer, set up for the current session (its first event of
// a session starts it afresh).
Ring& session_ring() {
  Ring& r = ring();
  const std::uint64_t s = detail::g_session.load(std::memory_order_acquire);
  if (r.session.load(std::memory_order_relaxed) != s) {
    r.n.store(0, std::memory_order_relaxed);
    r.dropped.store(0, std::memory_order_relaxed);
    r.sampling.skip.store(0, std::memory_order_relaxed);
    r.sampling.session.store(s, std::memory_order_relaxed);
    r.skips.store(0, std::memory_order_relaxed);
    r.widest.store(1, std::memory_order_relaxed);
    r.flows = 0;
    r.shift = 0;
    if (!r.slots) r.slots.reset(new Raw[kThreadEvents]);
    r.session.store(s, std::memory_order_release);
  }
  return r;
}

// Whether the session records an event at t0 (past its deadline it ends).
bool recording_at(std::int64_t t0) {
  const std::int64_t until = detail::g_until_ns.load(std::memory_order_relaxed);
  if (until == 0) return false;
  if (t0 > until) {
    std::int64_t expected = until;
    detail::g_until_ns.compare_exchange_strong(expected, 0, std::memory_order_relaxed);
    return false;
  }
  return true;
}

// Whether r has room for one more event (if not, it is counted as dropped).
bool room(Ring& r) {
  if (r.n.load(std::memory_order_relaxed) < kThreadEvents) return true;
  add(r.dropped);
  return false;
}

// After keeping a call at t: the thread's buffer against an even spread
// over the window. An eighth ahead, keep half as many calls; an eighth
// behind, twice as many (never more than all).
void pace(Ring& r, std::int64_t t) {
  const std::int64_t start = detail::g_start_ns.load(std::memory_order_relaxed);
  const std::int64_t until = detail::g_until_ns.load(std::memory_order_relaxed);
  if (until <= start) return;
  const double elapsed = static_cast<double>(t - start) / static_cast<double>(until - start);
  const double filled = static_cast<double>(r.n.load(std::memory_order_relaxed)) / static_cast<double>(kThreadEvents);
  if (filled > elapsed + 0.125 && r.shift < 24) {
    ++r.shift;
    r.widest.store(std::max(r.widest.load(std::memory_order_relaxed), 1u << r.shift), std::memory_order_relaxed);
  } else if (filled < elapsed - 0.125 && r.shift > 0) {
    --r.shift;
  }
}

void put(Ring& r, const Raw& e) {
  const std::size_t i = r.n.load(std::memory_order_relaxed);
  r.slots[i] = e;
  r.n.store(i + 1, std::memory_order_release);
}

void record(Kind kind, const char* name, std::int64_t t0, std::int64_t t1, std::int64_t arg, std::uint64_t track,
            std::uint64_t flow) {
  if (!recording_at(t0)) return;
  Ring& r = session_ring();
  if (room(r)) put(r, Raw{t0, t1 - t0, track ? track : current_track(), flow, name, arg, kind});
}

}  // namespace

std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* intern(std::string_view s) {
  auto& R = rec();
  std::lock_guard lock(R.mu);
  return R.interned.emplace(s).first->c_str();  // node-based: the string never moves
}

const char* kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::call: return "call";
    case Kind::send: return "send";
    case Kind::collective: return "collective";
    case Kind::step: return "step";
    case Kind::phase: return "phase";
    case Kind::user: return "user";
  }
  return "other";
}

std::uint64_t current_track() noexcept {
  if (auto id = current_actor_id()) return id;
  return ring().track;
}

std::uint64_t group_track(std::string_view group, std::uint32_t rank) {
  const auto h = std::hash<std::string_view>()(group);
  return kGroupTrack | ((static_cast<std::uint64_t>(h) << 8) & ~(kThreadTrack | kGroupTrack)) | (rank & 0xff);
}

void name_track(std::uint64_t track, std::string_view name) {
  auto& R = rec();
  std::lock_guard lock(R.mu);
  R.names.try_emplace(track, name);
}

void span(Kind kind, const char* name, std::int64_t t0_ns, std::int64_t t1_ns, std::int64_t arg, std::uint64_t track,
          std::uint64_t flow) {
  if (on()) record(kind, name, t0_ns, t1_ns, arg, track, flow);
}

std::uint64_t send(const char* name) {
  if (!on()) return 0;
  // A call that sample() left out never gets here: no clock read, no event,
  // and it carries no flow, so its run is not recorded either.
  Ring& r = session_ring();
  const auto t = now_ns();
  // Not kept: the call carries no flow, so no arrow can point at a send that is not there.
  if (!recording_at(t) || !room(r)) return 0;
  const std::uint64_t flow = r.flow_base | ++r.flows;
  put(r, Raw{t, 0, current_track(), flow, name, -1, Kind::send});
  pace(r, t);
  if (r.shift) {
    const std::uint64_t skip = (std::uint64_t{1} << r.shift) - 1;
    r.skips.store(r.skips.load(std::memory_order_relaxed) + skip, std::memory_order_relaxed);
    r.sampling.skip.store(skip, std::memory_order_relaxed);
  }
  return flow;
}

bool start(std::chrono::milliseconds length) {
  auto& R = rec();
  std::lock_guard lock(R.mu);
  if (!R.taken) return false;
  R.taken = false;
  R.names.clear();
  detail::g_session.fetch_add(1, std::memory_order_release);
  const auto t = now_ns();
  detail::g_start_ns.store(t, std::memory_order_relaxed);
  detail::g_until_ns.store(t + std::chrono::duration_cast<std::chrono::nanoseconds>(length).count(),
                           std::memory_order_relaxed);
  return true;
}

ProcessTrace take(std::string label) {
  auto& R = rec();
  ProcessTrace out;
  out.pid = static_cast<std::uint32_t>(::getpid());
  out.label = std::move(label);
  detail::g_until_ns.store(0, std::memory_order_relaxed);
  // The steady clock onto the wall clock, so that processes line up.
  const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  const std::int64_t offset = wall - now_ns();
  std::vector<Raw> raw;
  std::map<std::uint64_t, std::string> names;
  std::uint64_t main_track = 0;
  {
    // Only the copying happens under the lock; sorting and naming after it.
    std::lock_guard lock(R.mu);
    const std::uint64_t s = detail::g_session.load(std::memory_order_relaxed);
    for (auto& r : R.rings) {
      if (r->main_thread) main_track = r->track;
      if (r->session.load(std::memory_order_acquire) != s) continue;
      const std::size_t n = r->n.load(std::memory_order_acquire);
      out.dropped += r->dropped.load(std::memory_order_relaxed);
      out.sampled_out += r->skips.load(std::memory_order_relaxed) - r->sampling.skip.load(std::memory_order_relaxed);
      out.sampling = std::max(out.sampling, r->widest.load(std::memory_order_relaxed));
      raw.insert(raw.end(), r->slots.get(), r->slots.get() + n);
    }
    // A thread that ended writes no more: its buffer goes once read.
    std::erase_if(R.rings, [](const auto& r) { return r->ended.load(std::memory_order_acquire); });
    names = std::move(R.names);
    R.names.clear();
    R.taken = true;
  }
  std::sort(raw.begin(), raw.end(), [](const Raw& a, const Raw& b) { return a.ts < b.ts; });
  if (raw.size() > kProcessEvents) {
    out.dropped += raw.size() - kProcessEvents;
    raw.resize(kProcessEvents);
  }
  std::set<std::uint64_t> tracks;
  for (auto& e : raw) tracks.insert(e.track);
  for (auto t : tracks) {
    auto it = names.find(t);
    std::string name;
    if (it != names.end())
      name = std::move(it->second);
    else if (t == main_track)
      name = "main thread";
    else if (t & kThreadTrack)
      name = fmt::format("thread {}", t & ~kThreadTrack);
    else if (t & kGroupTrack)
      name = "collective group";
    else
      name = fmt::format("actor {}", t);
    out.tracks.push_back({t, std::move(name)});
  }
  out.events.reserve(raw.size());
  for (auto& e : raw)
    out.events.push_back({e.ts + offset, e.dur, e.track, e.flow, static_cast<std::uint32_t>(e.kind), e.arg,
                          e.name ? e.name : "?"});
  return out;
}

namespace {


// What an event's number means, by kind.
const char* arg_name(Kind k) noexcept {
  switch (k) {
    case Kind::collective: return "bytes";
    case Kind::step: return "step";
    case Kind::phase: return "microbatch";
    default: return "n";
  }
}

}  // namespace

std::string to_chrome(const std::vector<ProcessTrace>& processes, const std::vector<std::string>& notes,
                      ChromeStats* stats) {
  ChromeStats st;
  std::int64_t origin = INT64_MAX;
  for (auto& p : processes)
    for (auto& e : p.events) origin = std::min(origin, e.ts_ns);
  if (origin == INT64_MAX) origin = 0;
  const auto us = [origin](std::int64_t ns) { return static_cast<double>(ns - origin) / 1000.0; };
  // Flows whose both ends are here: a send and a call with the same id.
  std::set<std::uint64_t> sent, ran;
  for (auto& p : processes)
    for (auto& e : p.events) {
      if (!e.flow) continue;
      if (e.kind == static_cast<std::uint32_t>(Kind::send)) sent.insert(e.flow);
      if (e.kind == static_cast<std::uint32_t>(Kind::call)) ran.insert(e.flow);
    }
  std::string out = "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n";
  bool first = true;
  auto emit = [&](const std::string& ev) {
    out += first ? "" : ",\n";
    out += ev;
    first = false;
  };
  std::map<std::uint64_t, int> pids_seen;  // two hosts may have a process with the same pid
  for (auto& p : processes) {
    st.dropped += p.dropped;
    st.sampled_out += p.sampled_out;
    st.sampling = std::max(st.sampling, p.sampling);
    const int again = pids_seen[p.pid]++;
    const std::uint64_t pid = p.pid + static_cast<std::uint64_t>(again) * 100'000'000ull;  // the viewer's process id
    std::string pname = fmt::format("{} (pid {}", p.label, p.pid);
    if (p.sampling > 1)
      pname += fmt::format("; calls sampled, down to 1 in {}: {} not traced", p.sampling, p.sampled_out);
    if (p.dropped) pname += fmt::format("; {} events dropped", p.dropped);
    pname += ")";
    emit(fmt::format(R"({{"ph":"M","name":"process_name","pid":{},"args":{{"name":{}}}}})", pid,
                     json_string(pname)));
    // A track's spans must nest; those that overlap without nesting (two
    // all-reduces in flight, a reentrant actor) go onto extra lanes of it.
    const auto n = p.events.size();
    const auto dur_of = [&](const Event& e) {  // a send gets a microsecond: the flow's slice
      return e.kind == static_cast<std::uint32_t>(Kind::send) ? std::int64_t{1000} : std::max<std::int64_t>(e.dur_ns, 0);
    };
    std::vector<std::size_t> order(n), lane(n, 0);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const auto &x = p.events[a], &y = p.events[b];
      if (x.track != y.track) return x.track < y.track;
      if (x.ts_ns != y.ts_ns) return x.ts_ns < y.ts_ns;
      return dur_of(x) > dur_of(y);  // the enclosing one first
    });
    std::map<std::uint64_t, std::vector<std::vector<std::int64_t>>> open;  // track -> lanes -> ends of open spans
    std::map<std::uint64_t, std::size_t> lanes;                             // track -> lanes used
    for (auto i : order) {
      const auto& e = p.events[i];
      const std::int64_t end = e.ts_ns + dur_of(e);
      auto& ls = open[e.track];
      std::size_t k = 0;
      for (; k < ls.size(); ++k) {
        auto& stack = ls[k];
        while (!stack.empty() && stack.back() <= e.ts_ns) stack.pop_back();
        if (stack.empty() || stack.back() >= end) break;
      }
      if (k == ls.size()) ls.emplace_back();
      ls[k].push_back(end);
      lane[i] = k;
      lanes[e.track] = std::max(lanes[e.track], k + 1);
    }
    std::map<std::pair<std::uint64_t, std::size_t>, std::size_t> tid;  // (track, lane) -> a small thread id
    auto tid_of = [&](std::uint64_t track, std::size_t k) {
      auto it = tid.find({track, k});
      if (it != tid.end()) return it->second;
      const std::size_t id = tid.size() + 1;
      tid[{track, k}] = id;
      std::string name = fmt::format("track {}", track);
      for (auto& t : p.tracks)
        if (t.id == track) name = t.name;
      if (k) name += fmt::format(" (overlapping, {})", k + 1);
      emit(fmt::format(R"({{"ph":"M","name":"thread_name","pid":{},"tid":{},"args":{{"name":{}}}}})", pid, id,
                       json_string(name)));
      emit(fmt::format(R"({{"ph":"M","name":"thread_sort_index","pid":{},"tid":{},"args":{{"sort_index":{}}}}})", pid, id,
                       id));
      return id;
    };
    for (auto& t : p.tracks)
      for (std::size_t k = 0; k < std::max<std::size_t>(lanes[t.id], 1); ++k) tid_of(t.id, k);
    for (std::size_t i = 0; i < n; ++i) {
      const auto& e = p.events[i];
      const auto t = tid_of(e.track, lane[i]);
      const auto kind = static_cast<Kind>(e.kind);
      const bool is_send = kind == Kind::send;
      std::string args;
      if (e.arg >= 0) args = fmt::format(R"("{}":{})", arg_name(kind), e.arg);
      if (e.flow) args += fmt::format(R"({}"flow":{})", args.empty() ? "" : ",", e.flow);
      emit(fmt::format(R"({{"ph":"X","name":{},"cat":"{}","pid":{},"tid":{},"ts":{:.3f},"dur":{:.3f},"args":{{{}}}}})",
                       json_string(is_send ? "send " + e.name : e.name), kind_name(kind), pid, t, us(e.ts_ns),
                       static_cast<double>(dur_of(e)) / 1000.0, args));
      ++st.events;
      if (e.flow && sent.count(e.flow) && ran.count(e.flow)) {
        if (is_send) {
          emit(fmt::format(R"({{"ph":"s","name":"call","cat":"flow","id":{},"pid":{},"tid":{},"ts":{:.3f}}})", e.flow,
                           pid, t, us(e.ts_ns) + 0.5));
        } else if (kind == Kind::call) {
          emit(fmt::format(R"({{"ph":"f","bp":"e","name":"call","cat":"flow","id":{},"pid":{},"tid":{},"ts":{:.3f}}})",
                           e.flow, pid, t, us(e.ts_ns)));
          ++st.flows;
        }
      }
    }
  }
  out += "\n],\"metadata\":{\"troupe\":{";
  out += fmt::format(R"("processes":{},"events":{},"flows":{},"dropped":{},"notes":[)", processes.size(), st.events,
                     st.flows, st.dropped);
  for (std::size_t i = 0; i < notes.size(); ++i) out += (i ? "," : "") + json_string(notes[i]);
  out += "]}}}\n";
  if (stats) *stats = st;
  return out;
}

}  // namespace troupe::trace
