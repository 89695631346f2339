#pragma once
// NCCL backend: one GPU per rank. Rank 0 makes the ncclUniqueId and puts it
// in the rendezvous store (a Cap'n Proto message to the driver); the others
// fetch it. The communicator is made non-blocking, so no NCCL call can hang
// the group's thread: initialisation and every operation are polled, watching
// the abort flag and the group's timeout, and a failure ends in ncclCommAbort.
//
// Operations are queued on the group's stream and return at once with a
// ticket; the group completes them as their events fire (progress()), so
// back-to-back operations pipeline on the GPU as raw NCCL calls do.
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <string>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "runtime/coll/backend.hpp"
#include "runtime/coll/shm.hpp"

namespace troupe::coll {

class NcclGroup final : public Backend {
 public:
  NcclGroup(const GroupSpec& spec, const std::atomic<bool>* cancel);
  ~NcclGroup() override;
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  void allreduce(void* buf, std::size_t n, DType d, Op op) override;
  void reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) override;
  void allgather(const void* in, void* out, std::size_t n_in, DType d) override;
  void broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) override;
  void send(const void* buf, std::size_t n, DType d, std::uint32_t peer) override;
  void recv(void* buf, std::size_t n, DType d, std::uint32_t peer) override;
  /// One ncclGroupStart/End for the batch's headers (waited for: the
  /// receivers check count and dtype), one for its data (queued).
  void p2p_batch(std::span<Transfer> batch, std::uint32_t my_rank) override;
  void barrier() override;
  void* alloc(std::size_t bytes) override;
  void abort(std::int32_t rank_at_fault, const std::string& why) noexcept override;
  std::string failure() const override;
  void wait_event(void* event) override;
  std::uint64_t ticket() noexcept override { return ticket_; }
  std::uint64_t progress() override;

  cudaStream_t stream() const noexcept { return stream_; }

 private:
  struct InFlight {
    std::uint64_t ticket;
    cudaEvent_t done;
    std::chrono::steady_clock::time_point issued;
  };
  void check_buffer(const void* p, std::size_t bytes, const char* what);
  void check(ncclResult_t r, const char* what);  // ncclInProgress is fine
  void issued(const char* what);                  // record the event of the op just queued
  /// Before an operation: fail at once if the group has failed.
  void ensure_ok();
  /// Agrees with every rank on the operation (an allgather of descriptors),
  /// so mismatched sizes, dtypes or roots fail on every rank instead of
  /// hanging; skipped for one rank, where nothing can disagree.
  void agree(std::uint32_t kind, DType d, std::size_t n, Op op, std::int32_t root);
  [[noreturn]] void fail_now();
  void do_abort();  // on the group's thread: ncclCommAbort, once

  GroupSpec spec_;
  const std::atomic<bool>* cancel_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::uint64_t ticket_ = 0, completed_ = 0;
  std::deque<InFlight> inflight_;
  std::chrono::steady_clock::time_point next_check_{};
  std::deque<cudaEvent_t> spare_events_;
  void* desc_buf_ = nullptr;  // device: world descriptors
  void* batch_desc_ = nullptr;  // device: a descriptor per transfer of a batch
  std::size_t batch_cap_ = 0;
  std::deque<void*> allocations_;
  bool comm_aborted_ = false;
  mutable std::mutex mu_;
  std::atomic<bool> aborted_{false};
  std::string why_;
};

}  // namespace troupe::coll
