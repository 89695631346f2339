// The shared-memory backend's operations (the segment, barriers and waits
// are in shm.cpp; the layout in shm_layout.hpp).
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include <fmt/format.h>

#include "runtime/coll/shm.hpp"
#include "runtime/coll/detail/shm_layout.hpp"

namespace troupe::coll {

using namespace shm_detail;

template <class F>
void ShmGroup::staged_pieces(std::size_t n, std::size_t per_piece, F&& f) {
  const std::size_t pieces = std::max<std::size_t>((n + per_piece - 1) / per_piece, 1);
  for (std::size_t p = 0; p < pieces; ++p) {
    const std::size_t first = p * per_piece;
    const unsigned h = next_half_;
    next_half_ ^= 1u;
    f(p, first, std::min(per_piece, n - std::min(n, first)), h);
  }
}

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
  was_last_ = arrived(gen_);
  first_barrier_ = false;
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
  staged_pieces(n, std::max<std::size_t>(half_ / es, 1), [&](std::size_t p, std::size_t p0, std::size_t pn, unsigned h) {
    if (p > 0 || !all_copied) {
      if (!(p == 0 && me.copied)) copy_bytes(stage(spec_.rank, h), mine + p0 * es, pn * es);
      sync("allreduce");
    }
    reduce_staged(mine + p0 * es, h, pn, d, op);
  });
}

void ShmGroup::reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) {
  const std::size_t es = size_of(d), W = spec_.world;
  auto* src = static_cast<const std::byte*>(in);
  auto* dst = static_cast<std::byte*>(out);
  Desc me{++op_seq_, k_reduce_scatter, static_cast<std::uint32_t>(d), n_out, static_cast<std::uint32_t>(op), -1, 0, 0, 0, 0, {}};
  staged_pieces(n_out, std::max<std::size_t>(half_ / (es * W), 1), [&](std::size_t p, std::size_t k0, std::size_t len, unsigned h) {
    for (std::size_t c = 0; c < W; ++c) copy_bytes(stage(spec_.rank, h) + c * len * es, src + (c * n_out + k0) * es, len * es);
    if (p == 0) publish(me);
    sync("reduce_scatter");
    if (p == 0) check_all(me);
    std::byte* o = dst + k0 * es;
    copy_bytes(o, stage(0, h) + spec_.rank * len * es, len * es);
    for (std::uint32_t i = 1; i < W; ++i) reduce_into(o, stage(i, h) + spec_.rank * len * es, len, d, op);
    if (op == Op::avg) scale_down(o, len, d, W);
  });
}

void ShmGroup::allgather(const void* in, void* out, std::size_t n_in, DType d) {
  const std::size_t es = size_of(d), W = spec_.world;
  auto* src = static_cast<const std::byte*>(in);
  auto* dst = static_cast<std::byte*>(out);
  Desc me{++op_seq_, k_allgather, static_cast<std::uint32_t>(d), n_in, 0, -1, 0, 0, 0, 0, {}};
  staged_pieces(n_in, std::max<std::size_t>(half_ / es, 1), [&](std::size_t p, std::size_t k0, std::size_t len, unsigned h) {
    copy_bytes(stage(spec_.rank, h), src + k0 * es, len * es);
    if (p == 0) publish(me);
    sync("allgather");
    if (p == 0) check_all(me);
    for (std::size_t i = 0; i < W; ++i) copy_bytes(dst + (i * n_in + k0) * es, stage(static_cast<std::uint32_t>(i), h), len * es);
  });
}

void ShmGroup::broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) {
  const std::size_t es = size_of(d);
  auto* b = static_cast<std::byte*>(buf);
  Desc me{++op_seq_, k_broadcast, static_cast<std::uint32_t>(d), n, 0, static_cast<std::int32_t>(root), 0, 0, 0, 0, {}};
  const bool valid_root = root < spec_.world;
  staged_pieces(n, std::max<std::size_t>(half_ / es, 1), [&](std::size_t p, std::size_t k0, std::size_t len, unsigned h) {
    if (valid_root && root == spec_.rank) copy_bytes(stage(root, h), b + k0 * es, len * es);
    if (p == 0) publish(me);
    sync("broadcast");
    if (p == 0) check_all(me);
    if (root != spec_.rank) copy_bytes(b + k0 * es, stage(root, h), len * es);
  });
}

// Point to point: channel (from, to, tag) moves a message in pieces of one
// slot; the sender writes the next piece once the receiver has taken the last
// one. A send is done once its last piece is in the slot (its buffer is free);
// the receiver checks count and dtype against the first piece's header.
bool ShmGroup::p2p_step(Transfer& t, const PieceMover* mover) {
  const std::size_t es = size_of(t.dtype), cap = std::max<std::size_t>((mover ? mover->piece_bytes : slot_) / es, 1);
  const std::size_t pieces = std::max<std::size_t>((t.n + cap - 1) / cap, 1);
  const std::uint32_t me = spec_.rank;
  bool moved = false;
  while (!t.done) {
    const std::size_t k0 = t.progress * cap, len = std::min(cap, t.n - std::min(t.n, k0));
    if (t.is_send) {
      Chan& ch = h_->chans[me][t.peer][t.tag];
      auto& seq = send_seq_[t.peer][t.tag];
      if (ch.acked.load(std::memory_order_acquire) < seq) break;  // the slot still holds the last piece
      if (mover)
        mover->put(t, k0, len);
      else
        copy_bytes(p2p(me, t.peer, t.tag), static_cast<const std::byte*>(t.buf) + k0 * es, len * es);
      ch.count = t.n;
      ch.dtype = static_cast<std::uint32_t>(t.dtype);
      ch.posted.store(++seq, std::memory_order_release);
      ring(t.peer);
    } else {
      Chan& ch = h_->chans[t.peer][me][t.tag];
      auto& seq = recv_seq_[t.peer][t.tag];
      if (ch.posted.load(std::memory_order_acquire) <= seq) break;
      if (t.progress == 0 && (ch.count != t.n || ch.dtype != static_cast<std::uint32_t>(t.dtype))) {
        abort(static_cast<std::int32_t>(me),
              fmt::format("rank {} sends {} x {} but rank {} receives {} x {} (tag {})", t.peer,
                          to_string(static_cast<DType>(ch.dtype)), ch.count, me, to_string(t.dtype), t.n, t.tag));
        fail();
      }
      if (mover)
        mover->take(t, k0, len);
      else
        copy_bytes(static_cast<std::byte*>(t.buf) + k0 * es, p2p(t.peer, me, t.tag), len * es);
      ch.acked.store(++seq, std::memory_order_release);
      ring(t.peer);
    }
    moved = true;
    if (++t.progress == pieces) t.done = true;
  }
  return moved;
}

void ShmGroup::ring(std::uint32_t r) noexcept {
  auto& rs = h_->ranks[r];
  rs.bell.fetch_add(1, std::memory_order_seq_cst);
  if (rs.asleep.load(std::memory_order_seq_cst) != 0)
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&rs.bell), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

std::uint32_t ShmGroup::bell_arm() {
  auto& rs = h_->ranks[spec_.rank];
  rs.asleep.store(1, std::memory_order_seq_cst);
  return rs.bell.load(std::memory_order_seq_cst);
}

void ShmGroup::bell_disarm() { h_->ranks[spec_.rank].asleep.store(0, std::memory_order_relaxed); }

void ShmGroup::bell_wait(std::uint32_t seen, std::chrono::microseconds max) {
  auto& rs = h_->ranks[spec_.rank];
  const auto us = std::max<std::int64_t>(max.count(), 1);
  const timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
  // Shared (not PRIVATE): the peers that ring it are other processes.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&rs.bell), FUTEX_WAIT, seen, &ts, nullptr, 0);
  rs.asleep.store(0, std::memory_order_relaxed);
}

void ShmGroup::p2p_check(const Transfer& t) {
  if (h_->aborted.load(std::memory_order_acquire)) fail();
  if (cancel_ && cancel_->load(std::memory_order_relaxed)) {
    abort(static_cast<std::int32_t>(spec_.rank), fmt::format("rank {} left the group", spec_.rank));
    fail();
  }
  const auto now = shm_detail::clock::now();
  if (now >= next_pid_check_) {
    next_pid_check_ = now + std::chrono::milliseconds(2);
    const auto pid = h_->ranks[t.peer].pid.load(std::memory_order_relaxed);
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) {
      abort(static_cast<std::int32_t>(t.peer), fmt::format("rank {} (pid {}) died", t.peer, pid));
      fail();
    }
  }
  if (now - t.since >= std::chrono::milliseconds(spec_.timeout_ms)) {
    abort(static_cast<std::int32_t>(t.peer),
          fmt::format("timed out after {} ms waiting for rank {} to {} (tag {}, {} x {})", spec_.timeout_ms, t.peer,
                      t.is_send ? "receive what rank " + std::to_string(spec_.rank) + " sends"
                                : "send what rank " + std::to_string(spec_.rank) + " receives",
                      t.tag, to_string(t.dtype), t.n));
    fail();
  }
}

void ShmGroup::p2p_progress(std::span<Transfer* const> heads) { progress_heads(heads, nullptr); }

void ShmGroup::p2p_progress(std::span<Transfer* const> heads, const PieceMover& mover) { progress_heads(heads, &mover); }

void ShmGroup::progress_heads(std::span<Transfer* const> heads, const PieceMover* mover) {
  const auto now = shm_detail::clock::now();
  for (Transfer* t : heads) {
    if (t->since == std::chrono::steady_clock::time_point{}) t->since = now;
    if (p2p_step(*t, mover))
      t->since = now;
    else
      p2p_check(*t);
  }
}

void ShmGroup::send(const void* buf, std::size_t n, DType d, std::uint32_t peer) {
  Transfer t{true, const_cast<void*>(buf), n, d, peer, 0};
  wait([&]() { return p2p_step(t), t.done; }, "send", static_cast<std::int32_t>(peer));
}

void ShmGroup::recv(void* buf, std::size_t n, DType d, std::uint32_t peer) {
  Transfer t{false, buf, n, d, peer, 0};
  wait([&]() { return p2p_step(t), t.done; }, "recv", static_cast<std::int32_t>(peer));
}

}  // namespace troupe::coll
