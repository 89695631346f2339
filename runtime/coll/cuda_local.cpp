#include "runtime/coll/detail/cuda_local.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "runtime/coll/detail/cuda_api.hpp"
#include "runtime/coll/detail/gpu.hpp"

namespace troupe::coll {

using gpu::cu;

GroupSpec CudaLocalGroup::host_spec(const GroupSpec& spec) {
  GroupSpec h = spec;
  h.backend = BackendKind::shm;
  h.memory = Memory::host;
  h.staging_bytes = 8192;  // descriptors and tokens only: the data stays on the GPU
  h.p2p_bytes = 4096;
  h.heap_bytes = 0;
  return h;
}

CudaLocalGroup::CudaLocalGroup(const GroupSpec& spec, const std::atomic<bool>* cancel)
    : spec_(spec), host_(host_spec(spec), cancel) {
  device_ = spec_.device >= 0 ? spec_.device : gpu::default_device();
  if (auto e = cu().cudaSetDevice(device_); e != cudaSuccess) {
    cu().cudaGetLastError();
    abort(static_cast<std::int32_t>(spec_.rank),
          fmt::format("rank {} cannot use CUDA device {}: {}", spec_.rank, device_, cu().cudaGetErrorString(e)));
    throw CollectiveError(fmt::format("group '{}': {}", spec_.name, failure()));
  }
  cuda(cu().cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  // Every rank must be on the same GPU: compare the devices' UUIDs.
  cudaDeviceProp p{};
  cuda(cu().cudaGetDeviceProperties(&p, device_), "cudaGetDeviceProperties");
  ShmGroup::Posted mine;
  static_assert(sizeof p.uuid <= sizeof mine.blob);
  std::memcpy(mine.blob.data(), &p.uuid, sizeof p.uuid);
  auto all = host_.agree(k_alloc, DType::u8, 0, Op::sum, -1, mine);
  for (std::uint32_t i = 0; i < spec_.world; ++i)
    if (std::memcmp(all[i].blob.data(), all[0].blob.data(), sizeof p.uuid) != 0) {
      abort(static_cast<std::int32_t>(i),
            fmt::format("rank {} uses another GPU than rank 0: the device-local backend needs one GPU for all ranks "
                        "(use nccl for one GPU per rank)", i));
      throw CollectiveError(fmt::format("group '{}': {}", spec_.name, failure()));
    }
  staging_ = share(std::max<std::size_t>(spec_.staging_bytes, 1 << 20), "staging");
  // A slot per outgoing channel, at least 1 MiB: a piece costs a round trip
  // of the host group's counters.
  p2p_slot_ = std::max<std::size_t>(spec_.p2p_bytes / (std::size_t{spec_.world} * kP2PTags), 1 << 20) / 256 * 256;
  p2p_ = share(p2p_slot_ * spec_.world * kP2PTags, "point-to-point slots");
  mover_.piece_bytes = p2p_slot_;
  mover_.put = [this](const Transfer& t, std::size_t k0, std::size_t len) {
    const std::size_t es = size_of(t.dtype);
    if (k0 == 0) inputs_ready();  // Group::batch checked the buffers
    copy(p2p_slot(spec_.rank, t.peer, t.tag), static_cast<const std::byte*>(t.buf) + k0 * es, len * es);
    drain();  // in the slot before the receiver is told
  };
  mover_.take = [this](const Transfer& t, std::size_t k0, std::size_t len) {
    const std::size_t es = size_of(t.dtype);
    copy(static_cast<std::byte*>(t.buf) + k0 * es, p2p_slot(t.peer, spec_.rank, t.tag), len * es);
    drain();  // out of the slot before the sender may refill it
  };
}

std::byte* CudaLocalGroup::p2p_slot(std::uint32_t from, std::uint32_t to, std::uint32_t tag) const {
  return p2p_.at[from] + (std::size_t{to} * kP2PTags + tag) * p2p_slot_;
}

void CudaLocalGroup::p2p_progress(std::span<Transfer* const> heads) { host_.p2p_progress(heads, mover_); }

CudaLocalGroup::~CudaLocalGroup() {
  cu().cudaSetDevice(device_);
  if (stream_) cu().cudaStreamSynchronize(stream_);
  for (auto p : opened_) cu().cudaIpcCloseMemHandle(p);
  for (auto p : own_) cu().cudaFree(p);
  if (stream_) cu().cudaStreamDestroy(stream_);
}

void CudaLocalGroup::abort(std::int32_t rank_at_fault, const std::string& why) noexcept { host_.abort(rank_at_fault, why); }
std::string CudaLocalGroup::failure() const { return host_.failure(); }

void CudaLocalGroup::cuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cu().cudaGetLastError();
  abort(static_cast<std::int32_t>(spec_.rank), fmt::format("{} failed on rank {}: {}", what, spec_.rank, cu().cudaGetErrorString(e)));
  throw CollectiveError(fmt::format("group '{}': {}", spec_.name, failure()));
}

void CudaLocalGroup::drain() { cuda(cu().cudaStreamSynchronize(stream_), "the device work"); }

void CudaLocalGroup::inputs_ready() {
  // What wrote the inputs: the legacy default stream (cudaMemcpy from pageable
  // memory returns before its DMA lands) and blocking streams, which it waits
  // for; then this rank's stream, which waits for after()'s events.
  cuda(cu().cudaStreamSynchronize(nullptr), "the work before the collective");
  drain();
}

void CudaLocalGroup::wait_event(void* event) {
  if (event) cuda(cu().cudaStreamWaitEvent(stream_, static_cast<cudaEvent_t>(event), 0), "cudaStreamWaitEvent");
}

void CudaLocalGroup::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes) cuda(cu().cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "cudaMemcpyAsync");
}

CudaLocalGroup::Shared CudaLocalGroup::share(std::size_t bytes, const char* what) {
  void* mine = nullptr;
  if (auto e = cu().cudaMalloc(&mine, std::max<std::size_t>(bytes, 1)); e != cudaSuccess) {
    cu().cudaGetLastError();
    throw CollectiveError(fmt::format("group '{}': {} of {} bytes on CUDA device {}: {}", spec_.name, what, bytes,
                                      device_, cu().cudaGetErrorString(e)));
  }
  own_.push_back(mine);
  cuda(cu().cudaMemset(mine, 0, std::max<std::size_t>(bytes, 1)), "cudaMemset");
  ShmGroup::Posted post;
  post.word = reinterpret_cast<std::uint64_t>(mine);
  cudaIpcMemHandle_t h{};
  static_assert(sizeof h <= sizeof post.blob);
  cuda(cu().cudaIpcGetMemHandle(&h, mine), "cudaIpcGetMemHandle");
  std::memcpy(post.blob.data(), &h, sizeof h);
  auto all = host_.agree(k_alloc, DType::u8, bytes, Op::sum, -1, post);
  Shared s;
  s.bytes = bytes;
  s.at.resize(spec_.world);
  const auto self = static_cast<std::int32_t>(::getpid());
  for (std::uint32_t i = 0; i < spec_.world; ++i) {
    if (i == spec_.rank || host_.pid_of(i) == self) {
      s.at[i] = reinterpret_cast<std::byte*>(all[i].word);  // same process: the pointer itself
      continue;
    }
    cudaIpcMemHandle_t theirs{};
    std::memcpy(&theirs, all[i].blob.data(), sizeof theirs);
    void* p = nullptr;
    cuda(cu().cudaIpcOpenMemHandle(&p, theirs, cudaIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
    opened_.push_back(p);
    s.at[i] = static_cast<std::byte*>(p);
  }
  return s;
}

void* CudaLocalGroup::alloc(std::size_t bytes) {
  heap_.push_back(share(bytes, "alloc"));
  return heap_.back().at[spec_.rank];
}

std::optional<std::pair<std::size_t, std::size_t>> CudaLocalGroup::find_heap(const void* p, std::size_t bytes) const {
  auto* b = static_cast<const std::byte*>(p);
  for (std::size_t i = 0; i < heap_.size(); ++i) {
    const std::byte* base = heap_[i].at[spec_.rank];
    if (b >= base && b + bytes <= base + heap_[i].bytes) return std::pair{i, static_cast<std::size_t>(b - base)};
  }
  return std::nullopt;
}

void CudaLocalGroup::check_buffer(const void* p, std::size_t bytes, const char* what) {
  gpu::check_device_buffer(spec_, device_, p, bytes, what);
}

void CudaLocalGroup::spread(std::vector<std::byte*> srcs, std::vector<std::byte*> dsts, std::size_t n, DType d, Op op) {
  cuda(cu().reduce_spread(reinterpret_cast<void* const*>(srcs.data()), static_cast<int>(srcs.size()),
                           reinterpret_cast<void* const*>(dsts.data()), static_cast<int>(dsts.size()), n,
                           static_cast<int>(d), static_cast<int>(op), spec_.world, stream_),
       "the reduction kernel");
}

namespace {
// n elements in pieces of `per` (at least one piece, empty when n is 0).
std::size_t piece_count(std::size_t n, std::size_t per) { return std::max<std::size_t>((n + per - 1) / per, 1); }
std::pair<std::size_t, std::size_t> piece(std::size_t n, std::size_t per, std::size_t p) {
  const std::size_t k0 = p * per;
  return {k0, std::min(per, n - std::min(n, k0))};
}
}  // namespace

std::size_t CudaLocalGroup::piece_elems(std::size_t es, std::size_t blocks) const {
  return std::max<std::size_t>(staging_.bytes / (es * blocks), 1);
}

void CudaLocalGroup::allreduce(void* buf, std::size_t n, DType d, Op op) {
  const std::size_t es = size_of(d), bytes = n * es, W = spec_.world;
  check_buffer(buf, bytes, "allreduce");
  auto* mine = static_cast<std::byte*>(buf);
  const std::size_t per = piece_elems(es);
  ShmGroup::Posted post;
  const auto heap = bytes ? find_heap(buf, bytes) : std::nullopt;
  if (heap) post.word = (static_cast<std::uint64_t>(heap->first + 1) << 40) | heap->second;
  // Not a group buffer: this rank goes through staging, and its first piece
  // is staged before the agreement, whose barrier then covers it.
  const bool staged_first = !heap;
  if (staged_first) copy(staging_.at[spec_.rank], mine, std::min(per, n) * es);
  inputs_ready();  // done before a peer reads the buffer
  auto all = host_.agree(k_allreduce, d, n, op, -1, post);
  bool in_place = bytes > 0;
  for (const auto& a : all) in_place = in_place && a.word != 0 && (a.word >> 40) == (post.word >> 40);
  if (in_place) {
    const auto& buffer = heap_[heap.value().first];
    auto [b, e] = chunk(n, W, spec_.rank);
    std::vector<std::byte*> at(W);
    for (std::uint32_t i = 0; i < W; ++i) at[i] = buffer.at[i] + (all[i].word & ((1ull << 40) - 1)) + b * es;
    spread(at, at, e - b, d, op);
    drain();
    host_.rendezvous("allreduce");
    return;
  }
  const std::size_t pieces = piece_count(n, per);
  for (std::size_t p = 0; p < pieces; ++p) {
    const auto [p0, pn] = piece(n, per, p);
    if (p > 0 || !staged_first) {
      // Every rank's piece is in its staging before any kernel reads it.
      copy(staging_.at[spec_.rank], mine + p0 * es, pn * es);
      drain();
      host_.rendezvous("allreduce");
    }
    auto [b, e] = chunk(pn, W, spec_.rank);
    std::vector<std::byte*> at(W);
    for (std::uint32_t i = 0; i < W; ++i) at[i] = staging_.at[i] + b * es;
    spread(at, at, e - b, d, op);
    drain();
    host_.rendezvous("allreduce");
    copy(mine + p0 * es, staging_.at[spec_.rank], pn * es);
  }
  drain();
}

void CudaLocalGroup::reduce_scatter(const void* in, void* out, std::size_t n_out, DType d, Op op) {
  const std::size_t es = size_of(d), W = spec_.world;
  check_buffer(in, n_out * W * es, "reduce_scatter input");
  check_buffer(out, n_out * es, "reduce_scatter output");
  auto* src = static_cast<const std::byte*>(in);
  auto* dst = static_cast<std::byte*>(out);
  inputs_ready();
  const std::size_t per = piece_elems(es, W);
  const std::size_t pieces = piece_count(n_out, per);
  for (std::size_t p = 0; p < pieces; ++p) {
    const auto [k0, len] = piece(n_out, per, p);
    for (std::size_t c = 0; c < W; ++c) copy(staging_.at[spec_.rank] + c * len * es, src + (c * n_out + k0) * es, len * es);
    drain();
    if (p == 0)
      host_.agree(k_reduce_scatter, d, n_out, op, -1, {});
    else
      host_.rendezvous("reduce_scatter");
    std::vector<std::byte*> at(W);
    for (std::uint32_t i = 0; i < W; ++i) at[i] = staging_.at[i] + spec_.rank * len * es;
    spread(at, {dst + k0 * es}, len, d, op);
    drain();
    host_.rendezvous("reduce_scatter");
  }
}

void CudaLocalGroup::allgather(const void* in, void* out, std::size_t n_in, DType d) {
  const std::size_t es = size_of(d), W = spec_.world;
  check_buffer(in, n_in * es, "allgather input");
  check_buffer(out, n_in * W * es, "allgather output");
  auto* src = static_cast<const std::byte*>(in);
  auto* dst = static_cast<std::byte*>(out);
  inputs_ready();
  const std::size_t per = piece_elems(es);
  const std::size_t pieces = piece_count(n_in, per);
  for (std::size_t p = 0; p < pieces; ++p) {
    const auto [k0, len] = piece(n_in, per, p);
    copy(staging_.at[spec_.rank], src + k0 * es, len * es);
    drain();
    if (p == 0)
      host_.agree(k_allgather, d, n_in, Op::sum, -1, {});
    else
      host_.rendezvous("allgather");
    for (std::uint32_t i = 0; i < W; ++i) copy(dst + (i * n_in + k0) * es, staging_.at[i], len * es);
    drain();
    host_.rendezvous("allgather");
  }
}

void CudaLocalGroup::broadcast(void* buf, std::size_t n, DType d, std::uint32_t root) {
  const std::size_t es = size_of(d);
  check_buffer(buf, n * es, "broadcast");
  auto* b = static_cast<std::byte*>(buf);
  inputs_ready();
  const bool valid_root = root < spec_.world;
  const std::size_t per = piece_elems(es);
  const std::size_t pieces = piece_count(n, per);
  for (std::size_t p = 0; p < pieces; ++p) {
    const auto [k0, len] = piece(n, per, p);
    if (valid_root && root == spec_.rank) copy(staging_.at[root], b + k0 * es, len * es);
    drain();
    if (p == 0)
      host_.agree(k_broadcast, d, n, Op::sum, static_cast<std::int32_t>(root), {});  // checks the root
    else
      host_.rendezvous("broadcast");
    if (root != spec_.rank) copy(b + k0 * es, staging_.at[root], len * es);
    drain();
    host_.rendezvous("broadcast");
  }
}

// Blocking point to point (Backend::send / recv): one transfer moved to the end.
void CudaLocalGroup::move_one(Transfer t) {
  Transfer* head = &t;
  while (!t.done) {
    p2p_progress({&head, 1});
    if (!t.done) std::this_thread::yield();
  }
}

void CudaLocalGroup::send(const void* buf, std::size_t n, DType d, std::uint32_t peer) {
  move_one(Transfer{true, const_cast<void*>(buf), n, d, peer, 0});
}

void CudaLocalGroup::recv(void* buf, std::size_t n, DType d, std::uint32_t peer) {
  move_one(Transfer{false, buf, n, d, peer, 0});
}

void CudaLocalGroup::barrier() {
  inputs_ready();
  host_.barrier();
}

}  // namespace troupe::coll
