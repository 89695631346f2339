#pragma once
// The shared-memory backend: every rank of a group on one host maps one
// segment (header, per-rank staging, per-rank point-to-point areas, and a heap
// for group-allocated buffers). No socket is on the data path.
//
// Every collective starts with a barrier at which each rank has published a
// descriptor of what it is doing; all ranks check all descriptors, so a rank
// that disagrees (count, dtype, op, root) makes every rank fail with the same
// message instead of hanging. Waits watch an abort flag, the peers' pids and a
// deadline: a dead or stuck rank fails everyone within a bounded time.
//
// Allreduce on buffers from alloc() (64 KiB and up) works in place: rank r
// reduces chunk r across every rank's buffer and writes the result into all
// of them, so the data is never copied in or out. Other buffers go through
// the staging areas in pieces: every rank reduces the whole piece from every
// rank's staging into its own buffer, in rank order. The two staging halves
// alternate, so such a piece needs one barrier.
#include <sys/types.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/coll/backend.hpp"
#include "runtime/coll/types.hpp"
#include "runtime/codec/codec.hpp"

namespace troupe::coll {

struct GroupSpec {
  std::string name;
  std::uint64_t uid = 0;    ///< names the segment; fresh per group instance
  std::uint32_t world = 0;
  std::uint32_t rank = 0;
  BackendKind backend = BackendKind::shm;  ///< the one chosen (never automatic)
  std::string host;         ///< tcp: the address this rank listens on (reachable by its peers)
  std::uint64_t staging_bytes = 4ull << 20;  ///< per rank (two halves)
  std::uint64_t p2p_bytes = 4ull << 20;      ///< per rank: its outgoing channels' slots (touched lazily)
  std::uint64_t heap_bytes = 1ull << 30;     ///< group-allocated buffers (touched lazily)
  std::uint32_t timeout_ms = 120000;         ///< longest wait for a peer
  Memory memory = Memory::host;              ///< where the buffers live
  std::int32_t device = -1;                  ///< cuda: this rank's device (-1: gpu::default_device())
  TROUPE_FIELDS(name, uid, world, rank, backend, host, staging_bytes, p2p_bytes, heap_bytes, timeout_ms, memory, device)
};

inline constexpr std::uint32_t kMaxRanks = 64;

class ShmGroup final : public Backend {
 public:
  /// Maps the segment and waits until every rank has (CollectiveError on
  /// timeout, or once `*cancel` turns true).
  explicit ShmGroup(const GroupSpec& spec, const std::atomic<bool>* cancel = nullptr);
  ~ShmGroup();
  ShmGroup(const ShmGroup&) = delete;
  ShmGroup& operator=(const ShmGroup&) = delete;

  std::uint32_t rank() const noexcept { return spec_.rank; }
  std::uint32_t size() const noexcept { return spec_.world; }
  const GroupSpec& spec() const noexcept { return spec_; }

  // Blocking operations (the group's engine thread calls them in order).
  void allreduce(void* buf, std::size_t n, DType d, Op op) override;
  void reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) override;
  void allgather(const void* in, void* out, std::size_t n_in, DType d) override;
  void broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) override;
  void send(const void* buf, std::size_t n, DType d, std::uint32_t peer) override;
  void recv(void* buf, std::size_t n, DType d, std::uint32_t peer) override;
  std::uint64_t times_last() const noexcept override { return times_last_.load(std::memory_order_relaxed); }
  void barrier() override;
  bool p2p_nonblocking() const override { return true; }
  void p2p_progress(std::span<Transfer* const> heads) override;
  bool has_bell() const override { return true; }
  std::uint32_t bell_arm() override;
  void bell_wait(std::uint32_t seen, std::chrono::microseconds max) override;
  void bell_disarm() override;
  void bell_ring_self() noexcept override { ring(spec_.rank); }

  /// Allreduce up to 256 KiB and barriers: start here, finish anywhere.
  bool fast_start(FastOp& f) override;
  bool fast_ready(const FastOp& f) override;
  void fast_finish(FastOp& f) override;

  /// Collective: every rank calls it with the same size, in the same order.
  /// Returns this rank's buffer in the shared heap.
  void* alloc(std::size_t bytes) override;
  /// Marks the group failed for everyone (a member died, it was destroyed).
  void abort(std::int32_t rank_at_fault, const std::string& why) noexcept override;
  /// The failure, if the group has failed ("" otherwise).
  std::string failure() const override;

  // For a backend layered on this one (the device-local GPU path), which
  // keeps its data elsewhere and uses this group for agreement and barriers.
  /// What each rank publishes with an operation besides the descriptor.
  struct Posted {
    std::uint64_t word = 0;
    std::array<std::byte, 64> blob{};
  };
  /// Publishes this rank's operation and `mine`, waits for every rank, checks
  /// that they agree (as any operation here), and returns each rank's Posted.
  std::vector<Posted> agree(std::uint32_t kind, DType d, std::uint64_t count, Op op, std::int32_t root,
                            const Posted& mine);
  /// A barrier over every rank (no descriptor; `what` names it in errors).
  void rendezvous(const char* what) { sync(what); }
  /// The pid of rank r's process.
  std::int32_t pid_of(std::uint32_t r) const;
  /// Where a layered backend keeps the pieces of its transfers: this group's
  /// channels then carry only each piece's header (count, dtype) and its
  /// posted / taken counters, and put / take move the piece itself. put
  /// writes piece [k0, k0 + len) of t into the sender's slot for (peer, tag),
  /// which the receiver has emptied; take reads it from there into t.
  struct PieceMover {
    std::size_t piece_bytes = 0;
    std::function<void(const Transfer& t, std::size_t k0, std::size_t len)> put, take;
  };
  /// p2p_progress with the pieces moved by `mover`.
  void p2p_progress(std::span<Transfer* const> heads, const PieceMover& mover);

 private:
  struct Header;
  struct Desc;
  void publish(const Desc& d);
  void check_all(const Desc& mine);
  void sync(const char* what);  // barrier over every rank
  bool arrived(std::uint64_t gen) const;  // every rank has reached barrier generation `gen`
  // After the agreement: the in-place or staged rest of an allreduce.
  void finish_allreduce(const Desc& me, std::byte* mine, std::size_t n, DType d, Op op);
  // out[0, n) = op over every rank's staging half h, in rank order.
  void reduce_staged(std::byte* out, unsigned h, std::size_t n, DType d, Op op);
  // Walks n elements in pieces of per_piece (at least one piece, even for
  // n = 0), each in the next staging half: f(piece, first, count, half).
  template <class F>
  void staged_pieces(std::size_t n, std::size_t per_piece, F&& f);
  template <class Pred>
  void wait(Pred done, const char* what, std::int32_t peer);
  [[noreturn]] void fail();
  std::byte* stage(std::uint32_t r, unsigned half) const;
  // The slot of channel (from, to, tag).
  std::byte* p2p(std::uint32_t from, std::uint32_t to, std::uint32_t tag) const;
  // Moves what it can of t now; true if anything moved.
  bool p2p_step(Transfer& t, const PieceMover* mover = nullptr);
  void progress_heads(std::span<Transfer* const> heads, const PieceMover* mover);
  // Bumps rank r's doorbell, waking its sleeping group thread.
  void ring(std::uint32_t r) noexcept;
  // Between polls of stalled transfers: the abort flag, dead peers, and t's deadline.
  void p2p_check(const Transfer& t);
  /// Where [p, p + bytes) sits in the heap, if it lies wholly in alloc()ed memory.
  std::optional<std::uint64_t> heap_offset(const void* p, std::size_t bytes) const;

  GroupSpec spec_;
  const std::atomic<bool>* cancel_ = nullptr;
  std::string shm_name_;
  std::byte* map_ = nullptr;
  std::size_t map_bytes_ = 0;
  Header* h_ = nullptr;
  std::size_t half_ = 0;        // bytes per staging half
  std::byte* stage_base_ = nullptr;
  std::byte* p2p_base_ = nullptr;
  std::byte* heap_ = nullptr;
  std::uint64_t heap_top_ = 0;  // bump allocator (same on every rank)
  std::uint64_t gen_ = 0;       // barrier generation
  bool first_barrier_ = false;  // publish() happened: the next barrier is an operation's first
  bool was_last_ = false;       // every peer had arrived when this rank did (an operation's first barrier)
  std::atomic<std::uint64_t> times_last_{0};  // ... at an operation's first barrier
  unsigned next_half_ = 0;
  std::uint64_t op_seq_ = 0;
  std::size_t slot_ = 0;        // bytes per point-to-point channel slot
  std::uint64_t send_seq_[kMaxRanks][kP2PTags] = {};
  std::uint64_t recv_seq_[kMaxRanks][kP2PTags] = {};
  std::chrono::steady_clock::time_point next_pid_check_{};
};

}  // namespace troupe::coll
