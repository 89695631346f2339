// trace: recording (per-thread buffers, sessions, call sampling) and take().
// The Chrome trace they become is trace_chrome.cpp.
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

namespace troupe::trace {

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

}  // namespace troupe::trace
