#include "runtime/coll/detail/nccl.hpp"

#include <array>
#include <cstring>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "runtime/coll/detail/gpu.hpp"
#include "runtime/coll/detail/nccl_api.hpp"
#include "runtime/coll/detail/store.hpp"

namespace troupe::coll {

using gpu::cu;
using gpu::nc;

namespace {

using clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(DType d) {
  switch (d) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    case DType::u8: return ncclUint8;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(Op o) {
  switch (o) {
    case Op::sum: return ncclSum;
    case Op::avg: return ncclAvg;
    case Op::max: return ncclMax;
    case Op::min: return ncclMin;
  }
  return ncclSum;
}

// What each rank says it is doing, gathered before every operation of a
// group of several ranks (the same fields the shared-memory backend checks).
struct Desc {
  std::uint64_t kind, dtype, count, op;
  std::int64_t root;
  std::uint64_t pad[3];
};
static_assert(sizeof(Desc) == 64);

std::string show(const Desc& d) {
  std::string s = fmt::format("{} {} x {}", kind_name(static_cast<std::uint32_t>(d.kind)),
                              to_string(static_cast<DType>(d.dtype)), d.count);
  if (d.kind == k_allreduce || d.kind == k_reduce_scatter) s += fmt::format(" ({})", to_string(static_cast<Op>(d.op)));
  if (d.kind == k_broadcast) s += fmt::format(" from root {}", d.root);
  return s;
}

bool same(const Desc& a, const Desc& b) {
  return a.kind == b.kind && a.dtype == b.dtype && a.count == b.count && a.op == b.op && a.root == b.root;
}

}  // namespace

NcclGroup::NcclGroup(const GroupSpec& spec, const std::atomic<bool>* cancel) : spec_(spec), cancel_(cancel) {
  const std::string who = fmt::format("group '{}' rank {}", spec_.name, spec_.rank);
  device_ = spec_.device >= 0 ? spec_.device : gpu::default_device();
  if (auto e = cu().cudaSetDevice(device_); e != cudaSuccess)
    throw CollectiveError(fmt::format("{}: cannot use CUDA device {}: {}", who, device_, cu().cudaGetErrorString(e)));
  // A blocking stream: operations wait for what the legacy default stream
  // (cudaMemcpy, default-stream kernels) queued before them, as users expect.
  if (auto e = cu().cudaStreamCreate(&stream_); e != cudaSuccess)
    throw CollectiveError(fmt::format("{}: cudaStreamCreate: {}", who, cu().cudaGetErrorString(e)));
  ncclUniqueId id{};
  if (spec_.world == 1) {
    check(nc().ncclGetUniqueId(&id), "ncclGetUniqueId");
  } else {
    const std::string key = fmt::format("nccl-id/{}/{:016x}", spec_.name, spec_.uid);
    if (spec_.rank == 0) {
      check(nc().ncclGetUniqueId(&id), "ncclGetUniqueId");
      store_set(key, std::string(reinterpret_cast<const char*>(&id), sizeof id));
    } else {
      const std::string v = store_get(key, std::chrono::milliseconds(spec_.timeout_ms));
      if (v.size() != sizeof id)
        throw CollectiveError(fmt::format("{}: the NCCL id in the store has {} bytes, expected {}", who, v.size(), sizeof id));
      std::memcpy(&id, v.data(), sizeof id);
    }
  }
  ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
  cfg.blocking = 0;  // every call returns at once; we poll, so nothing hangs the group's thread
  check(nc().ncclCommInitRankConfig(&comm_, static_cast<int>(spec_.world), id, static_cast<int>(spec_.rank), &cfg),
        "ncclCommInitRankConfig");
  const auto deadline = clock::now() + std::chrono::milliseconds(spec_.timeout_ms);
  for (;;) {
    ncclResult_t st = ncclInProgress;
    nc().ncclCommGetAsyncError(comm_, &st);
    if (st == ncclSuccess) break;
    if (st != ncclInProgress) {
      abort(static_cast<std::int32_t>(spec_.rank), fmt::format("NCCL init failed on rank {}: {} ({})", spec_.rank,
                                                               nc().ncclGetErrorString(st), nc().ncclGetLastError(comm_)));
      fail_now();
    }
    if (cancel_ && cancel_->load()) abort(static_cast<std::int32_t>(spec_.rank), fmt::format("rank {} left the group", spec_.rank));
    if (clock::now() > deadline)
      abort(-1, fmt::format("timed out after {} ms waiting for every rank to join the NCCL communicator", spec_.timeout_ms));
    if (aborted_.load()) fail_now();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (spec_.world > 1) {
    if (auto e = cu().cudaMalloc(&desc_buf_, sizeof(Desc) * spec_.world); e != cudaSuccess)
      throw CollectiveError(fmt::format("{}: cudaMalloc: {}", who, cu().cudaGetErrorString(e)));
  }
}

NcclGroup::~NcclGroup() {
  cu().cudaSetDevice(device_);
  if (comm_) {
    // Abort rather than finalize: a peer may be gone, and abort never waits for one.
    if (!comm_aborted_) nc().ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  if (stream_) cu().cudaStreamSynchronize(stream_);
  for (auto& f : inflight_) cu().cudaEventDestroy(f.done);
  for (auto e : spare_events_) cu().cudaEventDestroy(e);
  for (auto p : allocations_) cu().cudaFree(p);
  if (desc_buf_) cu().cudaFree(desc_buf_);
  if (batch_desc_) cu().cudaFree(batch_desc_);
  if (stream_) cu().cudaStreamDestroy(stream_);
}

void NcclGroup::abort(std::int32_t rank_at_fault, const std::string& why) noexcept {
  std::lock_guard lock(mu_);
  if (aborted_.load()) return;
  (void)rank_at_fault;  // every reason already names the rank it is about
  why_ = why;
  aborted_.store(true);
}

std::string NcclGroup::failure() const {
  std::lock_guard lock(mu_);
  return aborted_.load() ? why_ : std::string();
}

void NcclGroup::do_abort() {
  if (comm_ && !comm_aborted_) {
    comm_aborted_ = true;
    nc().ncclCommAbort(comm_);
    comm_ = nullptr;
  }
}

void NcclGroup::fail_now() {
  do_abort();
  throw CollectiveError(fmt::format("group '{}': {}", spec_.name, failure()));
}

void NcclGroup::ensure_ok() {
  if (aborted_.load()) fail_now();
  if (cancel_ && cancel_->load()) {
    abort(static_cast<std::int32_t>(spec_.rank), fmt::format("rank {} left the group", spec_.rank));
    fail_now();
  }
}

void NcclGroup::check(ncclResult_t r, const char* what) {
  if (r == ncclSuccess || r == ncclInProgress) {
    if (r == ncclInProgress && comm_) {
      // A non-blocking call still enqueuing: it must finish before the next call.
      for (;;) {
        ncclResult_t st = ncclInProgress;
        nc().ncclCommGetAsyncError(comm_, &st);
        if (st == ncclSuccess) return;
        if (st != ncclInProgress) {
          r = st;
          break;
        }
        if (aborted_.load()) fail_now();
        std::this_thread::yield();
      }
    } else {
      return;
    }
  }
  abort(static_cast<std::int32_t>(spec_.rank),
        fmt::format("{} failed on rank {}: {}{}", what, spec_.rank, nc().ncclGetErrorString(r),
                    comm_ ? fmt::format(" ({})", nc().ncclGetLastError(comm_)) : std::string()));
  fail_now();
}

void NcclGroup::check_buffer(const void* p, std::size_t bytes, const char* what) {
  gpu::check_device_buffer(spec_, device_, p, bytes, what);
}

void NcclGroup::wait_event(void* event) {
  if (event) cu().cudaStreamWaitEvent(stream_, static_cast<cudaEvent_t>(event), 0);
}

void NcclGroup::issued(const char* what) {
  cudaEvent_t ev;
  if (!spare_events_.empty()) {
    ev = spare_events_.front();
    spare_events_.pop_front();
  } else if (auto e = cu().cudaEventCreateWithFlags(&ev, cudaEventDisableTiming); e != cudaSuccess) {
    abort(static_cast<std::int32_t>(spec_.rank), fmt::format("{}: cudaEventCreate: {}", what, cu().cudaGetErrorString(e)));
    fail_now();
  }
  cu().cudaEventRecord(ev, stream_);
  inflight_.push_back(InFlight{++ticket_, ev, clock::now()});
}

std::uint64_t NcclGroup::progress() {
  while (!inflight_.empty()) {
    auto& f = inflight_.front();
    const auto q = cu().cudaEventQuery(f.done);
    if (q == cudaSuccess) {
      completed_ = f.ticket;
      spare_events_.push_back(f.done);
      inflight_.pop_front();
      continue;
    }
    if (q != cudaErrorNotReady) {
      abort(static_cast<std::int32_t>(spec_.rank), fmt::format("CUDA error on rank {}: {}", spec_.rank, cu().cudaGetErrorString(q)));
      fail_now();
    }
    ensure_ok();
    // NCCL's own error state and the deadline: every millisecond, not every poll.
    const auto now = clock::now();
    if (now < next_check_) break;
    next_check_ = now + std::chrono::milliseconds(1);
    if (comm_) {
      ncclResult_t st = ncclSuccess;
      nc().ncclCommGetAsyncError(comm_, &st);
      if (st != ncclSuccess && st != ncclInProgress) {
        abort(static_cast<std::int32_t>(spec_.rank),
              fmt::format("NCCL failed on rank {}: {} ({})", spec_.rank, nc().ncclGetErrorString(st), nc().ncclGetLastError(comm_)));
        fail_now();
      }
    }
    if (now - f.issued > std::chrono::milliseconds(spec_.timeout_ms)) {
      abort(-1, fmt::format("timed out after {} ms waiting for a peer in an NCCL operation", spec_.timeout_ms));
      fail_now();
    }
    break;
  }
  return completed_;
}

void NcclGroup::agree(std::uint32_t kind, DType d, std::size_t n, Op op, std::int32_t root) {
  ensure_ok();
  if (spec_.world == 1) {
    if (kind == k_broadcast && root != 0) {
      abort(0, fmt::format("rank 0 broadcasts from root {} but the group has 1 rank", root));
      fail_now();
    }
    return;
  }
  Desc mine{kind, static_cast<std::uint64_t>(d), n, static_cast<std::uint64_t>(op), root, {}};
  std::vector<Desc> all(spec_.world);
  auto* slots = static_cast<Desc*>(desc_buf_);
  cu().cudaMemcpyAsync(slots + spec_.rank, &mine, sizeof mine, cudaMemcpyHostToDevice, stream_);
  check(nc().ncclAllGather(slots + spec_.rank, slots, sizeof(Desc), ncclUint8, comm_, stream_), "nc().ncclAllGather (descriptors)");
  cu().cudaMemcpyAsync(all.data(), slots, sizeof(Desc) * spec_.world, cudaMemcpyDeviceToHost, stream_);
  issued("descriptors");
  const auto t = ticket_;
  while (progress() < t) std::this_thread::yield();
  for (std::uint32_t i = 0; i < spec_.world; ++i) {
    if (all[i].kind == k_broadcast && (all[i].root < 0 || all[i].root >= static_cast<std::int64_t>(spec_.world))) {
      abort(static_cast<std::int32_t>(i),
            fmt::format("rank {} broadcasts from root {} but the group has {} ranks", i, all[i].root, spec_.world));
      fail_now();
    }
  }
  for (std::uint32_t j = 1; j < spec_.world; ++j)
    if (!same(all[0], all[j])) {
      abort(static_cast<std::int32_t>(j),
            fmt::format("ranks disagree: rank 0 calls {}, rank {} calls {}", show(all[0]), j, show(all[j])));
      fail_now();
    }
}

void NcclGroup::allreduce(void* buf, std::size_t n, DType d, Op op) {
  check_buffer(buf, n * size_of(d), "allreduce");
  agree(k_allreduce, d, n, op, -1);
  check(nc().ncclAllReduce(buf, buf, n, nccl_type(d), nccl_op(op), comm_, stream_), "ncclAllReduce");
  issued("allreduce");
}

void NcclGroup::reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) {
  check_buffer(in, n_out * spec_.world * size_of(d), "reduce_scatter input");
  check_buffer(out, n_out * size_of(d), "reduce_scatter output");
  agree(k_reduce_scatter, d, n_out, op, -1);
  check(nc().ncclReduceScatter(in, out, n_out, nccl_type(d), nccl_op(op), comm_, stream_), "ncclReduceScatter");
  issued("reduce_scatter");
}

void NcclGroup::allgather(const void* in, void* out, std::size_t n_in, DType d) {
  check_buffer(in, n_in * size_of(d), "allgather input");
  check_buffer(out, n_in * spec_.world * size_of(d), "allgather output");
  agree(k_allgather, d, n_in, Op::sum, -1);
  check(nc().ncclAllGather(in, out, n_in, nccl_type(d), comm_, stream_), "ncclAllGather");
  issued("allgather");
}

void NcclGroup::broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) {
  check_buffer(buf, n * size_of(d), "broadcast");
  agree(k_broadcast, d, n, Op::sum, static_cast<std::int32_t>(root));
  check(nc().ncclBroadcast(buf, buf, n, nccl_type(d), static_cast<int>(root), comm_, stream_), "ncclBroadcast");
  issued("broadcast");
}

void NcclGroup::send(const void* buf, std::size_t n, DType d, std::uint32_t peer) {
  check_buffer(buf, n * size_of(d), "send");
  ensure_ok();
  // The receiver checks count and dtype before the data moves.
  Desc mine{k_send, static_cast<std::uint64_t>(d), n, 0, -1, {}};
  auto* slot = static_cast<Desc*>(desc_buf_) + spec_.rank;
  cu().cudaMemcpyAsync(slot, &mine, sizeof mine, cudaMemcpyHostToDevice, stream_);
  check(nc().ncclSend(slot, sizeof(Desc), ncclUint8, static_cast<int>(peer), comm_, stream_), "ncclSend");
  check(nc().ncclSend(buf, n, nccl_type(d), static_cast<int>(peer), comm_, stream_), "ncclSend");
  issued("send");
}

void NcclGroup::recv(void* buf, std::size_t n, DType d, std::uint32_t peer) {
  check_buffer(buf, n * size_of(d), "recv");
  ensure_ok();
  Desc theirs{};
  auto* slot = static_cast<Desc*>(desc_buf_) + peer;
  check(nc().ncclRecv(slot, sizeof(Desc), ncclUint8, static_cast<int>(peer), comm_, stream_), "ncclRecv");
  cu().cudaMemcpyAsync(&theirs, slot, sizeof theirs, cudaMemcpyDeviceToHost, stream_);
  issued("recv header");
  const auto t = ticket_;
  while (progress() < t) std::this_thread::yield();
  if (theirs.count != n || theirs.dtype != static_cast<std::uint64_t>(d)) {
    abort(static_cast<std::int32_t>(spec_.rank),
          fmt::format("rank {} sends {} x {} but rank {} receives {} x {}", peer,
                      to_string(static_cast<DType>(theirs.dtype)), theirs.count, spec_.rank, to_string(d), n));
    fail_now();
  }
  check(nc().ncclRecv(buf, n, nccl_type(d), static_cast<int>(peer), comm_, stream_), "ncclRecv");
  issued("recv");
}

void NcclGroup::p2p_batch(std::span<Transfer> batch, std::uint32_t my_rank) {
  (void)my_rank;
  ensure_ok();
  for (auto& t : batch) check_buffer(t.buf, t.n * size_of(t.dtype), t.is_send ? "send" : "recv");
  if (batch.size() > batch_cap_) {
    if (batch_desc_) cu().cudaFree(batch_desc_);
    batch_desc_ = nullptr;
    batch_cap_ = 0;
    if (auto e = cu().cudaMalloc(&batch_desc_, sizeof(Desc) * batch.size()); e != cudaSuccess) {
      cu().cudaGetLastError();
      throw CollectiveError(fmt::format("group '{}': {} descriptors on CUDA device {}: {}", spec_.name, batch.size(),
                                        device_, cu().cudaGetErrorString(e)));
    }
    batch_cap_ = batch.size();
  }
  auto* slots = static_cast<Desc*>(batch_desc_);
  std::vector<Desc> host(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (batch[i].is_send) host[i] = Desc{k_send, static_cast<std::uint64_t>(batch[i].dtype), batch[i].n, batch[i].tag, -1, {}};
  cu().cudaMemcpyAsync(slots, host.data(), sizeof(Desc) * host.size(), cudaMemcpyHostToDevice, stream_);
  check(nc().ncclGroupStart(), "ncclGroupStart");
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const int peer = static_cast<int>(batch[i].peer);
    if (batch[i].is_send)
      check(nc().ncclSend(slots + i, sizeof(Desc), ncclUint8, peer, comm_, stream_), "ncclSend");
    else
      check(nc().ncclRecv(slots + i, sizeof(Desc), ncclUint8, peer, comm_, stream_), "ncclRecv");
  }
  check(nc().ncclGroupEnd(), "ncclGroupEnd");
  cu().cudaMemcpyAsync(host.data(), slots, sizeof(Desc) * host.size(), cudaMemcpyDeviceToHost, stream_);
  issued("send/recv headers");
  const auto t = ticket_;
  while (progress() < t) std::this_thread::yield();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& b = batch[i];
    if (!b.is_send && (host[i].count != b.n || host[i].dtype != static_cast<std::uint64_t>(b.dtype))) {
      abort(static_cast<std::int32_t>(spec_.rank),
            fmt::format("rank {} sends {} x {} but rank {} receives {} x {}", b.peer,
                        to_string(static_cast<DType>(host[i].dtype)), host[i].count, spec_.rank, to_string(b.dtype), b.n));
      fail_now();
    }
    // One communicator matches a pair's transfers in posted order whatever
    // their tag: a tag that differs means the two sides disagree on the order.
    if (!b.is_send && host[i].op != b.tag) {
      abort(static_cast<std::int32_t>(spec_.rank),
            fmt::format("rank {} sends with tag {} where rank {} receives with tag {}: NCCL takes the transfers "
                        "between two ranks in the order they are posted, whatever their tag",
                        b.peer, host[i].op, spec_.rank, b.tag));
      fail_now();
    }
  }
  check(nc().ncclGroupStart(), "ncclGroupStart");
  for (auto& b : batch) {
    if (b.is_send)
      check(nc().ncclSend(b.buf, b.n, nccl_type(b.dtype), static_cast<int>(b.peer), comm_, stream_), "ncclSend");
    else
      check(nc().ncclRecv(b.buf, b.n, nccl_type(b.dtype), static_cast<int>(b.peer), comm_, stream_), "ncclRecv");
    b.done = true;
  }
  check(nc().ncclGroupEnd(), "ncclGroupEnd");
  issued("send/recv");
}

void NcclGroup::barrier() {
  agree(k_barrier, DType::u8, 0, Op::sum, -1);
  issued("barrier");
}

void* NcclGroup::alloc(std::size_t bytes) {
  agree(k_alloc, DType::u8, bytes, Op::sum, -1);
  void* p = nullptr;
  if (auto e = cu().cudaMalloc(&p, std::max<std::size_t>(bytes, 1)); e != cudaSuccess) {
    cu().cudaGetLastError();
    throw CollectiveError(fmt::format("group '{}': alloc of {} bytes on CUDA device {}: {}", spec_.name, bytes, device_,
                                      cu().cudaGetErrorString(e)));
  }
  cu().cudaMemsetAsync(p, 0, bytes, stream_);
  cu().cudaStreamSynchronize(stream_);
  allocations_.push_back(p);
  return p;
}

}  // namespace troupe::coll
