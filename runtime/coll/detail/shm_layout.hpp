#pragma once
// Inside the shared-memory backend (shm.cpp: the segment and its barriers;
// shm_ops.cpp: the operations): the segment's layout and the wait loop.
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include <fmt/format.h>

#include "runtime/coll/shm.hpp"
#include "runtime/detail/blocking.hpp"

namespace troupe::coll {

namespace shm_detail {
using clock = std::chrono::steady_clock;
constexpr std::size_t kPage = 4096;
// Allreduce of group-allocated buffers from this size on works in place
// (smaller ones are staged: one barrier, not two).
constexpr std::size_t kInPlaceFrom = 64 * 1024;
// Allreduces up to this size can run on the caller's thread (fast_start): a
// few us of work once the peers are there.
constexpr std::size_t kFastMax = 256 * 1024;
constexpr std::size_t kBlock = 16384;  // elements: a block of every input stays in L2

inline std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace shm_detail

struct ShmGroup::Desc {
  std::uint64_t seq;
  std::uint32_t kind;
  std::uint32_t dtype;
  std::uint64_t count;
  std::uint32_t op;
  std::int32_t root;
  std::uint32_t heap;     // the buffer is a group-allocated one
  std::uint32_t copied;   // the data is already in the staging half
  std::uint64_t heap_base;
  std::uint64_t word;                 // agree(): what a layered backend posts
  std::array<std::byte, 64> blob;
};

// One point-to-point channel (sender, receiver, tag): a slot the sender
// fills with one piece at a time (posted = that piece's number) and the
// receiver empties (acked = the same number).
struct alignas(64) Chan {
  std::atomic<std::uint64_t> posted;
  std::atomic<std::uint64_t> acked;
  std::uint64_t count;   // elements of the message this piece belongs to
  std::uint32_t dtype;
};

struct ShmGroup::Header {
  std::atomic<std::int32_t> aborted;   // 0 ok, 2 writing the reason, 1 failed
  std::atomic<std::int32_t> at_fault;
  char reason[512];
  struct alignas(64) RankState {
    std::atomic<std::uint64_t> arrive;
    std::atomic<std::int32_t> pid;
    std::atomic<std::uint32_t> attached;
    // The doorbell (Backend::bell_arm): bumped by peers that post or take a
    // piece for this rank; `asleep` says whether its group's thread waits on it.
    std::atomic<std::uint32_t> bell;
    std::atomic<std::uint32_t> asleep;
    // Two slots by operation parity: a fast rank may publish its next
    // operation while a slow one still reads this one (never two ahead).
    Desc desc[2];
  } ranks[kMaxRanks];
  Chan chans[kMaxRanks][kMaxRanks][kP2PTags];  // [from][to][tag]
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared-memory atomics must be lock-free");

template <class Pred>
void ShmGroup::wait(Pred done, const char* what, std::int32_t peer) {
  if (done()) return;
  const auto start = shm_detail::clock::now();
  const auto deadline = start + std::chrono::milliseconds(spec_.timeout_ms);
  auto next_check = start + std::chrono::milliseconds(2);
  // Past the spin, a pool thread tells its pool it waits: ranks that are
  // actors of this process may need a thread to arrive (a tp group whose
  // members all block in a synchronous layer's sum would otherwise hold
  // every thread of a small pool).
  std::optional<troupe::detail::BlockingScope> blocking;
  for (std::uint64_t spins = 0;; ++spins) {
    if (done()) return;
    if (h_->aborted.load(std::memory_order_acquire)) fail();
    if (cancel_ && cancel_->load(std::memory_order_relaxed)) {
      abort(static_cast<std::int32_t>(spec_.rank), fmt::format("rank {} left the group", spec_.rank));
      fail();
    }
    // A short spin, then yield: ranks often outnumber cores, and a peer
    // that cannot get a core makes everyone wait.
    if (spins < 64) {
      shm_detail::cpu_relax();
      continue;
    }
    if (!blocking) blocking.emplace();
    ::sched_yield();
    if ((spins & 63) != 0) continue;
    const auto now = shm_detail::clock::now();
    if (now >= next_check) {
      next_check = now + std::chrono::milliseconds(2);
      const auto self = ::getpid();
      for (std::uint32_t i = 0; i < spec_.world; ++i) {
        const auto pid = h_->ranks[i].pid.load(std::memory_order_relaxed);
        if (pid <= 0 || pid == self) continue;
        if (::kill(pid, 0) != 0 && errno == ESRCH) {
          abort(static_cast<std::int32_t>(i), fmt::format("rank {} (pid {}) died", i, pid));
          fail();
        }
      }
    }
    if (now >= deadline) {
      std::string who = peer >= 0 ? fmt::format("rank {}", peer) : std::string("a peer");
      if (peer < 0) {
        for (std::uint32_t i = 0; i < spec_.world; ++i)
          if (h_->ranks[i].arrive.load(std::memory_order_relaxed) < gen_ ||
              !h_->ranks[i].attached.load(std::memory_order_relaxed)) {
            who = fmt::format("rank {}", i);
            break;
          }
      }
      abort(peer, fmt::format("timed out after {} ms waiting for {} in {}", spec_.timeout_ms, who, what));
      fail();
    }
  }
}

}  // namespace troupe::coll
