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

namespace troupe::coll {

namespace {

using clock = std::chrono::steady_clock;
constexpr std::size_t kPage = 4096;
// Allreduce of group-allocated buffers from this size on works in place
// (smaller ones are staged: one barrier, not two).
constexpr std::size_t kInPlaceFrom = 64 * 1024;
// Allreduces up to this size can run on the caller's thread (fast_start): a
// few us of work once the peers are there.
constexpr std::size_t kFastMax = 256 * 1024;
constexpr std::size_t kBlock = 16384;  // elements: a block of every input stays in L2

std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

}  // namespace

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

struct alignas(64) Chan {
  std::atomic<std::uint64_t> posted;
  std::atomic<std::uint64_t> acked;
  std::uint64_t count;
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
    // Two slots by operation parity: a fast rank may publish its next
    // operation while a slow one still reads this one (never two ahead).
    Desc desc[2];
  } ranks[kMaxRanks];
  Chan chans[kMaxRanks][kMaxRanks];  // [from][to]
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "shared-memory atomics must be lock-free");

ShmGroup::ShmGroup(const GroupSpec& spec, const std::atomic<bool>* cancel) : spec_(spec), cancel_(cancel) {
  if (spec_.world == 0 || spec_.world > kMaxRanks)
    throw CollectiveError(fmt::format("group '{}': {} ranks (1 to {} supported)", spec_.name, spec_.world, kMaxRanks));
  if (spec_.rank >= spec_.world)
    throw CollectiveError(fmt::format("group '{}': rank {} of a group of {}", spec_.name, spec_.rank, spec_.world));
  half_ = std::max<std::size_t>(align_up(spec_.staging_bytes / 2, 64), 4096);
  const std::size_t p2p_each = std::max<std::size_t>(align_up(spec_.p2p_bytes, 64), 4096);
  const std::size_t header = align_up(sizeof(Header), kPage);
  const std::size_t staging = align_up(2 * half_ * spec_.world, kPage);
  const std::size_t p2ps = align_up(p2p_each * spec_.world, kPage);
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
std::byte* ShmGroup::p2p(std::uint32_t r) const {
  return p2p_base_ + r * std::max<std::size_t>(align_up(spec_.p2p_bytes, 64), 4096);
}

void ShmGroup::abort(std::int32_t rank_at_fault, const std::string& why) noexcept {
  std::int32_t expected = 0;
  if (!h_->aborted.compare_exchange_strong(expected, 2)) return;
  std::snprintf(h_->reason, sizeof h_->reason, "%s", why.c_str());
  h_->at_fault.store(rank_at_fault, std::memory_order_relaxed);
  h_->aborted.store(1, std::memory_order_release);
}

std::string ShmGroup::failure() const {
  std::int32_t a = h_->aborted.load(std::memory_order_acquire);
  while (a == 2) a = h_->aborted.load(std::memory_order_acquire);
  return a ? std::string(h_->reason) : std::string();
}

void ShmGroup::fail() { throw CollectiveError(fmt::format("group '{}': {}", spec_.name, failure())); }

template <class Pred>
void ShmGroup::wait(Pred done, const char* what, std::int32_t peer) {
  if (done()) return;
  const auto start = clock::now();
  const auto deadline = start + std::chrono::milliseconds(spec_.timeout_ms);
  auto next_check = start + std::chrono::milliseconds(2);
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
      cpu_relax();
      continue;
    }
    ::sched_yield();
    if ((spins & 63) != 0) continue;
    const auto now = clock::now();
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

void ShmGroup::publish(const Desc& d) { h_->ranks[spec_.rank].desc[d.seq & 1] = d; }

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
  wait([&]() { return arrived(g); }, what, -1);
}

void ShmGroup::check_all(const Desc& mine) {
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

void ShmGroup::barrier() {
  FastOp f;
  f.kind = k_barrier;
  fast_start(f);
  fast_finish(f);
}

bool ShmGroup::fast_start(FastOp& f) {
  const std::size_t bytes = f.n * size_of(f.dtype);
  if (f.kind == k_allreduce ? bytes > kFastMax : f.kind != k_barrier) return false;
  if (h_->aborted.load(std::memory_order_acquire)) fail();
  Desc me{++op_seq_, f.kind, 0, 0, 0, -1, 0, 0, 0, 0, {}};
  if (f.kind == k_allreduce) {
    me.dtype = static_cast<std::uint32_t>(f.dtype);
    me.count = f.n;
    me.op = static_cast<std::uint32_t>(f.op);
    // Group-allocated buffers are reduced in place (no copies, a second
    // barrier); others go through the staging halves, the first piece staged
    // here, before the agreement.
    const auto off = bytes >= kInPlaceFrom ? heap_offset(f.buf, bytes) : std::nullopt;
    if (off) {
      me.heap = 1;
      me.heap_base = *off;  // each rank publishes where its own buffer is
    } else {
      copy_bytes(stage(spec_.rank, next_half_), f.buf, std::min(bytes, half_ / size_of(f.dtype) * size_of(f.dtype)));
      me.copied = 1;
    }
  }
  publish(me);
  h_->ranks[spec_.rank].arrive.store(++gen_, std::memory_order_release);
  f.seq = me.seq;
  f.gen = gen_;
  return true;
}

bool ShmGroup::fast_ready(const FastOp& f) {
  return h_->aborted.load(std::memory_order_acquire) != 0 || arrived(f.gen);
}

void ShmGroup::fast_finish(FastOp& f) {
  if (h_->aborted.load(std::memory_order_acquire)) fail();
  wait([&]() { return arrived(f.gen); }, kind_name(f.kind), -1);
  const Desc me = h_->ranks[spec_.rank].desc[f.seq & 1];
  check_all(me);
  if (f.kind == k_allreduce) finish_allreduce(me, static_cast<std::byte*>(f.buf), f.n, f.dtype, f.op);
}

void ShmGroup::reduce_staged(std::byte* out, unsigned h, std::size_t n, DType d, Op op) {
  if (spec_.world == 1) return;  // its own data, already in place
  const std::size_t es = size_of(d);
  for (std::size_t s = 0; s < n; s += kBlock) {
    const std::size_t len = std::min(kBlock, n - s);
    std::byte* o = out + s * es;
    reduce3(o, stage(0, h) + s * es, stage(1, h) + s * es, len, d, op);
    for (std::uint32_t i = 2; i < spec_.world; ++i) reduce_into(o, stage(i, h) + s * es, len, d, op);
    if (op == Op::avg) scale_down(o, len, d, spec_.world);
  }
}

void ShmGroup::allreduce(void* buf, std::size_t n, DType d, Op op) {
  FastOp f{k_allreduce, buf, n, d, op};
  if (fast_start(f)) return fast_finish(f);
  Desc me{++op_seq_, k_allreduce, static_cast<std::uint32_t>(d), n, static_cast<std::uint32_t>(op), -1, 0, 0, 0, 0, {}};
  const std::size_t es = size_of(d), bytes = n * es;
  if (const auto off = heap_offset(buf, bytes)) {
    me.heap = 1;
    me.heap_base = *off;
  } else {
    copy_bytes(stage(spec_.rank, next_half_), buf, std::min(bytes, half_ / es * es));
    me.copied = 1;
  }
  publish(me);
  sync("allreduce");
  check_all(me);
  finish_allreduce(me, static_cast<std::byte*>(buf), n, d, op);
}

void ShmGroup::finish_allreduce(const Desc& me, std::byte* mine, std::size_t n, DType d, Op op) {
  const std::size_t es = size_of(d);
  bool all_heap = n > 0, all_copied = true;
  for (std::uint32_t i = 0; i < spec_.world; ++i) {
    const Desc& o = h_->ranks[i].desc[me.seq & 1];
    all_heap = all_heap && o.heap;
    all_copied = all_copied && o.copied;
  }
  auto peer = [&](std::uint32_t i) { return heap_ + h_->ranks[i].desc[me.seq & 1].heap_base; };
  if (all_heap) {
    // In place: rank r reduces chunk r across every buffer, then writes it into all.
    auto [b, e] = chunk(n, spec_.world, spec_.rank);
    for (std::size_t s = b; s < e; s += kBlock) {
      const std::size_t len = std::min(kBlock, e - s);
      std::byte* acc = mine + s * es;
      for (std::uint32_t i = 0; i < spec_.world; ++i)
        if (i != spec_.rank) reduce_into(acc, peer(i) + s * es, len, d, op);
      if (op == Op::avg) scale_down(acc, len, d, spec_.world);
      for (std::uint32_t i = 0; i < spec_.world; ++i)
        if (i != spec_.rank) copy_bytes(peer(i) + s * es, acc, len * es);
    }
    sync("allreduce");
    return;
  }
  // Through the staging halves: every rank reduces the whole piece from every
  // rank's half, in rank order (the same result everywhere), into its own
  // buffer. The halves alternate, so one barrier a piece is enough: a rank
  // writes a half again only after everyone has passed the barrier of the
  // piece that followed its last use.
  const std::size_t per_piece = std::max<std::size_t>(half_ / es, 1);
  const std::size_t pieces = std::max<std::size_t>((n + per_piece - 1) / per_piece, 1);
  for (std::size_t p = 0; p < pieces; ++p) {
    const std::size_t p0 = p * per_piece, pn = std::min(per_piece, n - std::min(n, p0));
    const unsigned h = next_half_;
    next_half_ ^= 1u;
    if (p > 0 || !all_copied) {
      if (!(p == 0 && me.copied)) copy_bytes(stage(spec_.rank, h), mine + p0 * es, pn * es);
      sync("allreduce");
    }
    reduce_staged(mine + p0 * es, h, pn, d, op);
  }
}

void ShmGroup::reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) {
  const std::size_t es = size_of(d), W = spec_.world;
  auto* src = static_cast<const std::byte*>(in);
  auto* dst = static_cast<std::byte*>(out);
  Desc me{++op_seq_, k_reduce_scatter, static_cast<std::uint32_t>(d), n_out, static_cast<std::uint32_t>(op), -1, 0, 0, 0, 0, {}};
  const std::size_t per_piece = std::max<std::size_t>(half_ / (es * W), 1);
  const std::size_t pieces = std::max<std::size_t>((n_out + per_piece - 1) / per_piece, 1);
  for (std::size_t p = 0; p < pieces; ++p) {
    const std::size_t k0 = p * per_piece, len = std::min(per_piece, n_out - std::min(n_out, k0));
    const unsigned h = next_half_;
    next_half_ ^= 1u;
    for (std::size_t c = 0; c < W; ++c) copy_bytes(stage(spec_.rank, h) + c * len * es, src + (c * n_out + k0) * es, len * es);
    if (p == 0) publish(me);
    sync("reduce_scatter");
    if (p == 0) check_all(me);
    std::byte* o = dst + k0 * es;
    copy_bytes(o, stage(0, h) + spec_.rank * len * es, len * es);
    for (std::uint32_t i = 1; i < W; ++i) reduce_into(o, stage(i, h) + spec_.rank * len * es, len, d, op);
    if (op == Op::avg) scale_down(o, len, d, W);
  }
}

void ShmGroup::allgather(const void* in, void* out, std::size_t n_in, DType d) {
  const std::size_t es = size_of(d), W = spec_.world;
  auto* src = static_cast<const std::byte*>(in);
  auto* dst = static_cast<std::byte*>(out);
  Desc me{++op_seq_, k_allgather, static_cast<std::uint32_t>(d), n_in, 0, -1, 0, 0, 0, 0, {}};
  const std::size_t per_piece = std::max<std::size_t>(half_ / es, 1);
  const std::size_t pieces = std::max<std::size_t>((n_in + per_piece - 1) / per_piece, 1);
  for (std::size_t p = 0; p < pieces; ++p) {
    const std::size_t k0 = p * per_piece, len = std::min(per_piece, n_in - std::min(n_in, k0));
    const unsigned h = next_half_;
    next_half_ ^= 1u;
    copy_bytes(stage(spec_.rank, h), src + k0 * es, len * es);
    if (p == 0) publish(me);
    sync("allgather");
    if (p == 0) check_all(me);
    for (std::size_t i = 0; i < W; ++i) copy_bytes(dst + (i * n_in + k0) * es, stage(static_cast<std::uint32_t>(i), h), len * es);
  }
}

void ShmGroup::broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) {
  const std::size_t es = size_of(d);
  auto* b = static_cast<std::byte*>(buf);
  Desc me{++op_seq_, k_broadcast, static_cast<std::uint32_t>(d), n, 0, static_cast<std::int32_t>(root), 0, 0, 0, 0, {}};
  const std::size_t per_piece = std::max<std::size_t>(half_ / es, 1);
  const std::size_t pieces = std::max<std::size_t>((n + per_piece - 1) / per_piece, 1);
  const bool valid_root = root < spec_.world;
  for (std::size_t p = 0; p < pieces; ++p) {
    const std::size_t k0 = p * per_piece, len = std::min(per_piece, n - std::min(n, k0));
    const unsigned h = next_half_;
    next_half_ ^= 1u;
    if (valid_root && root == spec_.rank) copy_bytes(stage(root, h), b + k0 * es, len * es);
    if (p == 0) publish(me);
    sync("broadcast");
    if (p == 0) check_all(me);
    if (root != spec_.rank) copy_bytes(b + k0 * es, stage(root, h), len * es);
  }
}

void ShmGroup::send(const void* buf, std::size_t n, DType d, std::uint32_t peer) {
  const std::size_t es = size_of(d), cap = std::max<std::size_t>(align_up(spec_.p2p_bytes, 64), 4096) / es;
  auto* src = static_cast<const std::byte*>(buf);
  Chan& ch = h_->chans[spec_.rank][peer];
  const std::size_t pieces = std::max<std::size_t>((n + cap - 1) / cap, 1);
  for (std::size_t p = 0; p < pieces; ++p) {
    const std::size_t k0 = p * cap, len = std::min(cap, n - std::min(n, k0));
    copy_bytes(p2p(spec_.rank), src + k0 * es, len * es);
    ch.count = n;
    ch.dtype = static_cast<std::uint32_t>(d);
    const auto seq = ++send_seq_[peer];
    ch.posted.store(seq, std::memory_order_release);
    wait([&]() { return ch.acked.load(std::memory_order_acquire) >= seq; }, "send", static_cast<std::int32_t>(peer));
  }
}

void ShmGroup::recv(void* buf, std::size_t n, DType d, std::uint32_t peer) {
  const std::size_t es = size_of(d), cap = std::max<std::size_t>(align_up(spec_.p2p_bytes, 64), 4096) / es;
  auto* dst = static_cast<std::byte*>(buf);
  Chan& ch = h_->chans[peer][spec_.rank];
  const std::size_t pieces = std::max<std::size_t>((n + cap - 1) / cap, 1);
  for (std::size_t p = 0; p < pieces; ++p) {
    const auto seq = ++recv_seq_[peer];
    wait([&]() { return ch.posted.load(std::memory_order_acquire) >= seq; }, "recv", static_cast<std::int32_t>(peer));
    if (p == 0 && (ch.count != n || ch.dtype != static_cast<std::uint32_t>(d))) {
      abort(static_cast<std::int32_t>(spec_.rank),
            fmt::format("rank {} sends {} x {} but rank {} receives {} x {}", peer,
                        to_string(static_cast<DType>(ch.dtype)), ch.count, spec_.rank, to_string(d), n));
      fail();
    }
    const std::size_t k0 = p * cap, len = std::min(cap, n - std::min(n, k0));
    copy_bytes(dst + k0 * es, p2p(peer), len * es);
    ch.acked.store(seq, std::memory_order_release);
  }
}

}  // namespace troupe::coll
