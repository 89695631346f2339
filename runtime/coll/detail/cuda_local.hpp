#pragma once
// The device-local backend: every rank of the group uses the same GPU, which
// NCCL refuses ("Duplicate GPU detected"). Ranks may share a process (their
// buffers are plain device pointers to each other) or not (CUDA IPC handles,
// opened once per buffer). A shared-memory group on the host carries the
// agreement on each operation, the barriers, the failure flag and the dead-
// peer checks; the data never leaves the GPU.
//
// Allreduce on buffers from alloc() is in place: rank r reduces chunk r across
// every rank's buffer with one kernel and writes the result into all of them.
// Other buffers go through a device staging buffer per rank, piece by piece.
// Point to point: each (sender, receiver, tag) channel has a slot on the GPU
// that the sender fills a piece at a time; the host group's channel of the
// same name carries each piece's header and its posted / taken counters. So
// a batch's transfers all progress together on the group's thread, as in an
// NCCL group: a send waits only for its own receiver.
// Operations complete before they return (the stream is drained). Inputs
// written on the legacy default stream or a blocking stream are waited for;
// on a non-blocking stream, name it with Group::after.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include <cuda_runtime_api.h>

#include "runtime/coll/backend.hpp"
#include "runtime/coll/shm.hpp"

namespace troupe::coll {

class CudaLocalGroup final : public Backend {
 public:
  CudaLocalGroup(const GroupSpec& spec, const std::atomic<bool>* cancel);
  ~CudaLocalGroup() override;
  CudaLocalGroup(const CudaLocalGroup&) = delete;
  CudaLocalGroup& operator=(const CudaLocalGroup&) = delete;

  void allreduce(void* buf, std::size_t n, DType d, Op op) override;
  void reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) override;
  void allgather(const void* in, void* out, std::size_t n_in, DType d) override;
  void broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) override;
  void send(const void* buf, std::size_t n, DType d, std::uint32_t peer) override;
  void recv(void* buf, std::size_t n, DType d, std::uint32_t peer) override;
  void barrier() override;
  void* alloc(std::size_t bytes) override;
  void abort(std::int32_t rank_at_fault, const std::string& why) noexcept override;
  std::string failure() const override;
  void wait_event(void* event) override;
  bool p2p_nonblocking() const override { return true; }
  void p2p_progress(std::span<Transfer* const> heads) override;
  bool has_bell() const override { return true; }
  std::uint32_t bell_arm() override { return host_.bell_arm(); }
  void bell_wait(std::uint32_t seen, std::chrono::microseconds max) override { host_.bell_wait(seen, max); }
  void bell_disarm() override { host_.bell_disarm(); }
  void bell_ring_self() noexcept override { host_.bell_ring_self(); }

 private:
  /// A device buffer every rank holds one of, as this rank reaches each.
  struct Shared {
    std::size_t bytes = 0;
    std::vector<std::byte*> at;  // by rank; at[rank_] is this rank's own
  };
  static GroupSpec host_spec(const GroupSpec& spec);
  Shared share(std::size_t bytes, const char* what);
  /// (buffer index, offset) if [p, p + bytes) lies in one alloc()ed buffer.
  std::optional<std::pair<std::size_t, std::size_t>> find_heap(const void* p, std::size_t bytes) const;
  void check_buffer(const void* p, std::size_t bytes, const char* what);
  void cuda(cudaError_t e, const char* what);  // fails the group on a CUDA error
  void drain();                                // waits for this rank's stream
  void inputs_ready();                         // and for what wrote the inputs
  void spread(std::vector<std::byte*> srcs, std::vector<std::byte*> dsts, std::size_t n, DType d, Op op);
  std::size_t piece_elems(std::size_t es, std::size_t blocks = 1) const;
  void copy(void* dst, const void* src, std::size_t bytes);
  std::byte* p2p_slot(std::uint32_t from, std::uint32_t to, std::uint32_t tag) const;
  void move_one(Transfer t);

  GroupSpec spec_;
  ShmGroup host_;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  Shared staging_;
  Shared p2p_;                    // by sender: its slots, [to][tag], p2p_slot_ bytes each
  std::size_t p2p_slot_ = 0;
  ShmGroup::PieceMover mover_;    // moves the pieces between device buffers and the slots
  std::vector<Shared> heap_;
  std::vector<void*> own_;     // cudaMalloc'ed here
  std::vector<void*> opened_;  // IPC mappings of other processes' buffers
};

}  // namespace troupe::coll
