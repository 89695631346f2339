// The shared-memory backend: the segment, joining, waits, barriers and
// agreement (the operations are in shm_ops.cpp, the layout in shm_layout.hpp).
#include "runtime/coll/shm.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "runtime/coll/detail/shm_layout.hpp"

namespace troupe::coll {

using namespace shm_detail;

ShmGroup::ShmGroup(const GroupSpec& spec, const std::atomic<bool>* cancel) : spec_(spec), cancel_(cancel) {
  if (spec_.world == 0 || spec_.world > kMaxRanks)
    throw CollectiveError(fmt::format("group '{}': {} ranks (1 to {} supported)", spec_.name, spec_.world, kMaxRanks));
  if (spec_.rank >= spec_.world)
    throw CollectiveError(fmt::format("group '{}': rank {} of a group of {}", spec_.name, spec_.rank, spec_.world));
  half_ = std::max<std::size_t>(align_up(spec_.staging_bytes / 2, 64), 4096);
  // Each rank's p2p_bytes are split between its outgoing channels (a slot per
  // receiver and tag, at least a page each); pages are touched only by the
  // channels a program uses.
  slot_ = std::max<std::size_t>(spec_.p2p_bytes / (spec_.world * kP2PTags) / 64 * 64, kPage);
  const std::size_t header = align_up(sizeof(Header), kPage);
  const std::size_t staging = align_up(2 * half_ * spec_.world, kPage);
  const std::size_t p2ps = align_up(slot_ * spec_.world * spec_.world * kP2PTags, kPage);
  map_bytes_ = header + staging + p2ps + align_up(spec_.heap_bytes, kPage);
  shm_name_ = fmt::format("/troupe-coll-{:016x}", spec_.uid);
  int fd = ::shm_open(shm_name_.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0)
    throw CollectiveError(fmt::format("group '{}': shm_open {}: {}", spec_.name, shm_name_, std::strerror(errno)));
  if (::ftruncate(fd, static_cast<off_t>(map_bytes_)) != 0) {
    int e = errno;
    ::close(fd);
    throw CollectiveError(fmt::format("group '{}': cannot size {} to {} bytes: {}", spec_.name, shm_name_, map_bytes_,
                                      std::strerror(e)));
  }
  void* m = ::mmap(nullptr, map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED)
    throw CollectiveError(fmt::format("group '{}': mmap of {} bytes: {}", spec_.name, map_bytes_, std::strerror(errno)));
  map_ = static_cast<std::byte*>(m);
  h_ = reinterpret_cast<Header*>(map_);
  stage_base_ = map_ + header;
  p2p_base_ = stage_base_ + staging;
  heap_ = p2p_base_ + p2ps;
  auto& me = h_->ranks[spec_.rank];
  me.pid.store(static_cast<std::int32_t>(::getpid()), std::memory_order_relaxed);
  me.attached.store(1, std::memory_order_release);
  try {
    wait(
        [&]() {
          for (std::uint32_t i = 0; i < spec_.world; ++i)
            if (!h_->ranks[i].attached.load(std::memory_order_acquire)) return false;
          return true;
        },
        "joining the group", -1);
  } catch (...) {
    ::shm_unlink(shm_name_.c_str());
    ::munmap(map_, map_bytes_);
    throw;
  }
  // Everyone has it mapped: the name can go (no file is left behind, even on a crash).
  ::shm_unlink(shm_name_.c_str());
}

ShmGroup::~ShmGroup() {
  if (map_) ::munmap(map_, map_bytes_);
}

std::byte* ShmGroup::stage(std::uint32_t r, unsigned half) const { return stage_base_ + (2 * r + half) * half_; }
std::byte* ShmGroup::p2p(std::uint32_t from, std::uint32_t to, std::uint32_t tag) const {
  return p2p_base_ + ((static_cast<std::size_t>(from) * spec_.world + to) * kP2PTags + tag) * slot_;
}

void ShmGroup::abort(std::int32_t rank_at_fault, const std::string& why) noexcept {
  std::int32_t expected = 0;
  if (!h_->aborted.compare_exchange_strong(expected, 2)) return;
  std::snprintf(h_->reason, sizeof h_->reason, "%s", why.c_str());
  h_->at_fault.store(rank_at_fault, std::memory_order_relaxed);
  h_->aborted.store(1, std::memory_order_release);
  for (std::uint32_t r = 0; r < spec_.world; ++r) ring(r);  // sleepers see it now, not at their next check
}

std::string ShmGroup::failure() const {
  std::int32_t a = h_->aborted.load(std::memory_order_acquire);
  while (a == 2) a = h_->aborted.load(std::memory_order_acquire);
  return a ? std::string(h_->reason) : std::string();
}

void ShmGroup::fail() { throw CollectiveError(fmt::format("group '{}': {}", spec_.name, failure())); }

void ShmGroup::publish(const Desc& d) {
  h_->ranks[spec_.rank].desc[d.seq & 1] = d;
  first_barrier_ = true;  // the next barrier is the operation's first: who arrives last there is counted
}

bool ShmGroup::arrived(std::uint64_t g) const {
  for (std::uint32_t i = 0; i < spec_.world; ++i)
    if (h_->ranks[i].arrive.load(std::memory_order_acquire) < g) return false;
  return true;
}

void ShmGroup::sync(const char* what) {
  if (h_->aborted.load(std::memory_order_acquire)) fail();
  ++gen_;
  h_->ranks[spec_.rank].arrive.store(gen_, std::memory_order_release);
  const auto g = gen_;
  if (first_barrier_) {  // the other barriers of an operation need no look at the peers now
    was_last_ = arrived(g);
    first_barrier_ = false;
  }
  wait([&]() { return arrived(g); }, what, -1);
}

void ShmGroup::check_all(const Desc& mine) {
  if (was_last_) times_last_.store(times_last_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  auto show = [](const Desc& d) {
    std::string s = fmt::format("{} {} x {}", kind_name(d.kind), to_string(static_cast<DType>(d.dtype)), d.count);
    if (d.kind == k_allreduce || d.kind == k_reduce_scatter) s += fmt::format(" ({})", to_string(static_cast<Op>(d.op)));
    if (d.kind == k_broadcast) s += fmt::format(" from root {}", d.root);
    return s;
  };
  const unsigned par = mine.seq & 1;
  for (std::uint32_t i = 0; i < spec_.world; ++i) {
    const Desc& d = h_->ranks[i].desc[par];
    if (d.kind == k_broadcast && (d.root < 0 || static_cast<std::uint32_t>(d.root) >= spec_.world)) {
      abort(static_cast<std::int32_t>(i),
            fmt::format("rank {} broadcasts from root {} but the group has {} ranks", i, d.root, spec_.world));
      fail();
    }
    if (d.kind != mine.kind || d.dtype != mine.dtype || d.count != mine.count || d.op != mine.op ||
        d.root != mine.root) {
      // Report it the same way on every rank: the first two that differ, in rank order.
      const Desc& first = h_->ranks[0].desc[par];
      std::uint32_t j = 1;
      for (; j < spec_.world; ++j) {
        const Desc& o = h_->ranks[j].desc[par];
        if (o.kind != first.kind || o.dtype != first.dtype || o.count != first.count || o.op != first.op ||
            o.root != first.root)
          break;
      }
      abort(static_cast<std::int32_t>(j), fmt::format("ranks disagree: rank 0 calls {}, rank {} calls {}", show(first),
                                                      j, show(h_->ranks[j].desc[par])));
      fail();
    }
  }
}

std::optional<std::uint64_t> ShmGroup::heap_offset(const void* p, std::size_t bytes) const {
  auto* b = static_cast<const std::byte*>(p);
  if (b < heap_ || b + bytes > heap_ + heap_top_) return std::nullopt;  // not (wholly) in alloc()ed memory
  return static_cast<std::uint64_t>(b - heap_);
}

void* ShmGroup::alloc(std::size_t bytes) {
  const std::size_t region = align_up(std::max<std::size_t>(bytes, 1), kPage);
  if (heap_top_ + region * spec_.world > spec_.heap_bytes)
    throw CollectiveError(fmt::format("group '{}': alloc of {} bytes: the shared heap ({} bytes) is full", spec_.name,
                                      bytes, spec_.heap_bytes));
  Desc me{++op_seq_, k_alloc, 0, bytes, 0, -1, 0, 0, 0, 0, {}};
  publish(me);
  sync("alloc");
  check_all(me);
  void* p = heap_ + heap_top_ + spec_.rank * region;
  heap_top_ += region * spec_.world;
  return p;
}

std::vector<ShmGroup::Posted> ShmGroup::agree(std::uint32_t kind, DType d, std::uint64_t count, Op op,
                                              std::int32_t root, const Posted& mine) {
  Desc me{++op_seq_, kind, static_cast<std::uint32_t>(d), count, static_cast<std::uint32_t>(op), root, 0, 0, 0,
          mine.word, mine.blob};
  publish(me);
  sync(kind_name(kind));
  check_all(me);
  std::vector<Posted> all(spec_.world);
  for (std::uint32_t i = 0; i < spec_.world; ++i) {
    const Desc& o = h_->ranks[i].desc[me.seq & 1];
    all[i].word = o.word;
    all[i].blob = o.blob;
  }
  return all;
}

std::int32_t ShmGroup::pid_of(std::uint32_t r) const { return h_->ranks[r].pid.load(std::memory_order_relaxed); }

}  // namespace troupe::coll
