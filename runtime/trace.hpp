#pragma once
// Tracing for `troupe trace`: a window of a process's actor calls, collective
// operations and training steps, recorded into bounded per-thread buffers and
// written out as a Chrome trace (Perfetto and chrome://tracing open it).
//
// Off, it costs each hook one relaxed load (`on()`). A session records until
// its deadline or until take(); a thread's buffer holds kThreadEvents, and
// what does not fit is counted as dropped, never grown. Names are interned
// (stored as pointers) so recording allocates nothing.
//
// Calls are sampled so that a busy thread's buffer lasts the window: each
// thread keeps every call while its buffer fills no faster than an even
// spread over the window (an eighth ahead is allowed), and past that 1 in 2,
// 4, ... (and back when it lags). A call sampled out costs no clock read and
// carries no flow, so neither its send nor its run is recorded; the counts
// are reported. Steps, phases, collectives and user spans are all kept.
//
// The cluster drives it: `troupe trace --seconds N` asks the head, which asks
// every driver; a driver records itself, asks each of its workers (a
// `traceStart` frame), and sends the head its own and its workers' traces.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/codec/codec.hpp"

namespace troupe::trace {

namespace detail {
extern std::atomic<std::int64_t> g_until_ns;  // the session's deadline (steady ns); 0: not recording
extern std::atomic<std::uint64_t> g_session;  // sessions started so far

// A thread's call sampling, read inline on every call made while a trace
// records (so a call sampled out costs a few instructions, not a function
// call). Only its thread writes; take() reads `skip` to count what the
// thread left out. The thread's buffer (trace.cpp) owns it.
struct Sampling {
  std::atomic<std::uint64_t> session{0};  // the session `skip` belongs to
  std::atomic<std::uint64_t> skip{0};     // calls still to leave out before the next one kept
};
// The calling thread's sampling; null until its first traced call.
inline thread_local constinit Sampling* t_sampling = nullptr;
// A call that came from another process: the flow it carries (0: none).
inline thread_local constinit std::uint64_t t_inbound_flow = 0;
}

/// Whether this process records now.
inline bool on() noexcept { return detail::g_until_ns.load(std::memory_order_relaxed) != 0; }
/// The current (or last) session's number: a track named in it need not be named again.
inline std::uint64_t session() noexcept { return detail::g_session.load(std::memory_order_relaxed); }
/// The steady clock in ns (what events are stamped with).
std::int64_t now_ns() noexcept;
/// The same pointer for the same text, for the process's life.
const char* intern(std::string_view s);

enum class Kind : std::uint8_t {
  call = 0,        ///< an actor runs a call (a flow arrives from its send)
  send = 1,        ///< a call leaves its caller (a flow starts)
  collective = 2,  ///< a collective operation or a batch of transfers, on its group's thread
  step = 3,        ///< a training step
  phase = 4,       ///< part of a step (data, forward, backward, ... ; a pipeline's F, B, W)
  user = 5,        ///< trace::span from user code
};
const char* kind_name(Kind k) noexcept;

/// The calling thread's track: the actor it runs now, else one of its own.
std::uint64_t current_track() noexcept;
/// The track of rank `rank` of collective group `group` in this process.
std::uint64_t group_track(std::string_view group, std::uint32_t rank);
/// Names a track ("actor 7 (Replica)", "group dp rank 1"); the first name sticks.
void name_track(std::uint64_t track, std::string_view name);

/// Records a span [t0, t1] (steady ns) on `track` (0: current_track()).
/// `arg`: a number shown with it (a step, a byte count; -1: none).
void span(Kind kind, const char* name, std::int64_t t0_ns, std::int64_t t1_ns, std::int64_t arg = -1,
          std::uint64_t track = 0, std::uint64_t flow = 0);
/// A span from here to the end of the scope, on the current track:
///   { trace::Scope s("load shard"); ... }
/// `name` must outlive the trace (a literal, or trace::intern(text)).
class Scope {
 public:
  explicit Scope(const char* name, Kind kind = Kind::user) noexcept
      : name_(name), kind_(kind), t0_(on() ? now_ns() : 0) {}
  ~Scope() {
    if (t0_) span(kind_, name_, t0_, now_ns());
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_;
  Kind kind_;
  std::int64_t t0_;
};

/// A call leaves the current track now: records it and returns the flow id
/// its execution is tied to (0 when not recording, or not kept: see sample()).
std::uint64_t send(const char* name);

/// While recording, whether the thread's next call is kept (then send() it);
/// false: it is left out (counted), and costs no clock read and no event.
/// Inline: this is all a call that is sampled out pays.
inline bool sample() noexcept {
  detail::Sampling* s = detail::t_sampling;
  if (!s) return true;
  const std::uint64_t k = s->skip.load(std::memory_order_relaxed);
  if (k == 0 || s->session.load(std::memory_order_relaxed) != detail::g_session.load(std::memory_order_relaxed))
    return true;
  s->skip.store(k - 1, std::memory_order_relaxed);  // one writer: this thread
  return false;
}

/// A call that came from another process (a worker serving its driver): the
/// local call it becomes carries this flow instead of starting one (0: none).
inline std::uint64_t& inbound_flow() noexcept { return detail::t_inbound_flow; }

// ---- Sessions and what they give --------------------------------------------

/// Per thread: at most this many events per session; the rest are dropped (counted).
inline constexpr std::size_t kThreadEvents = 1u << 16;
/// Per process: at most this many events are taken.
inline constexpr std::size_t kProcessEvents = 400000;

struct Event {
  std::int64_t ts_ns = 0, dur_ns = 0;  ///< wall clock (ns since the epoch) once taken
  std::uint64_t track = 0, flow = 0;
  std::uint32_t kind = 0;
  std::int64_t arg = -1;
  std::string name;
  TROUPE_FIELDS(ts_ns, dur_ns, track, flow, kind, arg, name)
};
struct Track {
  std::uint64_t id = 0;
  std::string name;
  TROUPE_FIELDS(id, name)
};
struct ProcessTrace {
  std::uint32_t pid = 0;
  std::string label;              ///< "driver", "worker of actor 7"
  std::uint64_t dropped = 0;      ///< events that did not fit
  std::uint64_t sampled_out = 0;  ///< calls not traced: their thread was sampling
  std::uint32_t sampling = 1;     ///< the sparsest a thread sampled calls: 1 in this many
  std::vector<Track> tracks;
  std::vector<Event> events;      ///< oldest first
  TROUPE_FIELDS(pid, label, dropped, sampled_out, sampling, tracks, events)
};

/// Starts a session of `length` (false: one is running already; it goes on).
bool start(std::chrono::milliseconds length);
/// Ends the session (if any) and takes what it recorded, stamped with the
/// wall clock so processes line up.
ProcessTrace take(std::string label);

/// What the Chrome trace holds.
struct ChromeStats {
  std::size_t events = 0, flows = 0;  ///< spans written, flows whose both ends were found
  std::uint64_t dropped = 0;          ///< the processes' dropped events, summed
  std::uint64_t sampled_out = 0;      ///< calls not traced (sampling), summed
  std::uint32_t sampling = 1;         ///< the sparsest sampling: 1 in this many calls
};
/// The Chrome trace (JSON trace event format) of processes' traces: a
/// process per pid, a thread track per actor, thread or group rank, spans as
/// complete events, and a flow from each call's send to its execution when
/// both ends were recorded. `notes` (processes that did not answer, events
/// dropped) go in its metadata.
std::string to_chrome(const std::vector<ProcessTrace>& processes, const std::vector<std::string>& notes,
                      ChromeStats* stats = nullptr);

}  // namespace troupe::trace
