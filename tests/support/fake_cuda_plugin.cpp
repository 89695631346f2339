// A stand-in for libtroupe_cuda.so on machines without a GPU, so the device
// collectives' own logic (the device-local backend's agreement, staging and
// point-to-point protocol, the group thread's handling of device batches)
// runs in the suites everywhere a CUDA build is made. Select it with
// TROUPE_CUDA_PLUGIN=<this library>.
//
// One fake device. Its memory is host memory in memfd segments, so a CUDA
// IPC handle is (pid, fd, size) and opening it maps /proc/PID/fd/FD: worker
// processes share buffers as they would on one GPU. Copies and memsets are
// done when called, streams and events are always complete, and the
// device-local reduction runs on the CPU. It has no compute table and no
// NCCL: it checks protocols, not kernels; the real plugin on a GPU checks
// those.
#include <sys/mman.h>
#include <unistd.h>

#include <fcntl.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

#include <cuda_runtime_api.h>

#include "runtime/coll/detail/cuda_api.hpp"
#include "runtime/detail/cuda_plugin.hpp"

namespace {

struct Mapping {
  std::size_t bytes = 0;
  int fd = -1;  // own allocations: the memfd; opened ones: -1
};

std::mutex mu;
std::map<std::uintptr_t, Mapping> maps;  // by base address
thread_local cudaError_t last_error = cudaSuccess;

struct IpcHandle {
  std::int32_t pid;
  std::int32_t fd;
  std::uint64_t bytes;
};
static_assert(sizeof(IpcHandle) <= sizeof(cudaIpcMemHandle_t));

cudaError_t fail(cudaError_t e) {
  last_error = e;
  return e;
}

// The mapping [base, base + bytes) holding p, if any.
const std::pair<const std::uintptr_t, Mapping>* find(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto it = maps.upper_bound(a);
  if (it == maps.begin()) return nullptr;
  --it;
  return a < it->first + it->second.bytes ? &*it : nullptr;
}

cudaError_t fake_malloc(void** p, std::size_t bytes) {
  bytes = std::max<std::size_t>(bytes, 1);
  const int fd = ::memfd_create("troupe-fake-gpu", MFD_CLOEXEC);
  if (fd < 0) return fail(cudaErrorMemoryAllocation);
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    ::close(fd);
    return fail(cudaErrorMemoryAllocation);
  }
  void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    ::close(fd);
    return fail(cudaErrorMemoryAllocation);
  }
  std::lock_guard lock(mu);
  maps[reinterpret_cast<std::uintptr_t>(m)] = {bytes, fd};
  *p = m;
  return cudaSuccess;
}

cudaError_t fake_free(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard lock(mu);
  auto it = maps.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == maps.end() || it->second.fd < 0) return fail(cudaErrorInvalidValue);
  ::munmap(p, it->second.bytes);
  ::close(it->second.fd);
  maps.erase(it);
  return cudaSuccess;
}

cudaError_t fake_ipc_get(cudaIpcMemHandle_t* h, void* p) {
  std::lock_guard lock(mu);
  auto it = maps.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == maps.end() || it->second.fd < 0) return fail(cudaErrorInvalidValue);
  IpcHandle mine{static_cast<std::int32_t>(::getpid()), it->second.fd, it->second.bytes};
  std::memset(h, 0, sizeof *h);
  std::memcpy(h, &mine, sizeof mine);
  return cudaSuccess;
}

cudaError_t fake_ipc_open(void** p, cudaIpcMemHandle_t h, unsigned) {
  IpcHandle theirs{};
  std::memcpy(&theirs, &h, sizeof theirs);
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", theirs.pid, theirs.fd);
  const int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) return fail(cudaErrorInvalidResourceHandle);
  void* m = ::mmap(nullptr, theirs.bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return fail(cudaErrorInvalidResourceHandle);
  std::lock_guard lock(mu);
  maps[reinterpret_cast<std::uintptr_t>(m)] = {theirs.bytes, -1};
  *p = m;
  return cudaSuccess;
}

cudaError_t fake_ipc_close(void* p) {
  std::lock_guard lock(mu);
  auto it = maps.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == maps.end() || it->second.fd >= 0) return fail(cudaErrorInvalidValue);
  ::munmap(p, it->second.bytes);
  maps.erase(it);
  return cudaSuccess;
}

cudaError_t fake_attributes(cudaPointerAttributes* a, const void* p) {
  std::memset(a, 0, sizeof *a);
  std::lock_guard lock(mu);
  if (find(p)) {
    a->type = cudaMemoryTypeDevice;
    a->device = 0;
    a->devicePointer = const_cast<void*>(p);
  } else {
    a->type = cudaMemoryTypeUnregistered;
  }
  return cudaSuccess;
}

// The device-local reduction (runtime/coll/cuda/reduce.cu), on the CPU.
float from_bf16(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
std::uint16_t to_bf16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}
float from_f16(std::uint16_t b) {
  _Float16 h;
  std::memcpy(&h, &b, 2);
  return static_cast<float>(h);
}
std::uint16_t to_f16(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  std::uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}

template <class A>
A combine(A a, A b, int op) {
  switch (op) {
    case 2: return a > b ? a : b;
    case 3: return a < b ? a : b;
    default: return static_cast<A>(a + b);
  }
}

template <class T, class A, class Load, class Store>
void spread(void* const* srcs, int n_src, void* const* dsts, int n_dst, std::size_t count, int op, std::size_t avg_by,
            Load load, Store store) {
  for (std::size_t k = 0; k < count; ++k) {
    A acc = load(static_cast<const T*>(srcs[0])[k]);
    for (int i = 1; i < n_src; ++i) acc = combine<A>(acc, load(static_cast<const T*>(srcs[i])[k]), op);
    if (op == 1) acc = static_cast<A>(acc / static_cast<A>(avg_by));
    const T out = store(acc);
    for (int j = 0; j < n_dst; ++j) static_cast<T*>(dsts[j])[k] = out;
  }
}

template <class T>
void spread_plain(void* const* s, int ns, void* const* d, int nd, std::size_t count, int op, std::size_t avg_by) {
  spread<T, T>(s, ns, d, nd, count, op, avg_by, [](T v) { return v; }, [](T v) { return v; });
}

cudaError_t fake_reduce_spread(void* const* srcs, int n_src, void* const* dsts, int n_dst, std::size_t count, int dtype,
                               int op, std::size_t avg_by, cudaStream_t) {
  if (count == 0) return cudaSuccess;
  if (n_src < 1 || n_dst < 0) return fail(cudaErrorInvalidValue);
  // In place (a source is also a destination): every source is read at k
  // before any destination is written at k, as in the kernel.
  switch (dtype) {
    case 0: spread_plain<float>(srcs, n_src, dsts, n_dst, count, op, avg_by); break;
    case 1: spread_plain<double>(srcs, n_src, dsts, n_dst, count, op, avg_by); break;
    case 2: spread_plain<std::int32_t>(srcs, n_src, dsts, n_dst, count, op, avg_by); break;
    case 3: spread_plain<std::int64_t>(srcs, n_src, dsts, n_dst, count, op, avg_by); break;
    case 4: spread_plain<std::uint8_t>(srcs, n_src, dsts, n_dst, count, op, avg_by); break;
    case 5: spread<std::uint16_t, float>(srcs, n_src, dsts, n_dst, count, op, avg_by, from_bf16, to_bf16); break;
    case 6: spread<std::uint16_t, float>(srcs, n_src, dsts, n_dst, count, op, avg_by, from_f16, to_f16); break;
    default: return fail(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

int stream_token;  // every stream and event points here: they are always complete

troupe::coll::gpu::CudaRuntimeApi make_runtime() {
  troupe::coll::gpu::CudaRuntimeApi r;
  r.cudaGetErrorString = [](cudaError_t e) -> const char* {
    return e == cudaSuccess ? "no error" : "fake CUDA error (troupe's test plugin)";
  };
  r.cudaGetLastError = []() {
    const cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
  };
  r.cudaSetDevice = [](int d) { return d == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); };
  r.cudaGetDeviceProperties = [](cudaDeviceProp* p, int d) {
    if (d != 0) return fail(cudaErrorInvalidDevice);
    std::memset(p, 0, sizeof *p);
    std::snprintf(p->name, sizeof p->name, "troupe fake GPU (host memory)");
    p->major = 9;
    return cudaSuccess;
  };
  r.cudaMalloc = &fake_malloc;
  r.cudaFree = &fake_free;
  r.cudaMemcpy = [](void* dst, const void* src, std::size_t n, cudaMemcpyKind) {
    if (n) std::memmove(dst, src, n);
    return cudaSuccess;
  };
  r.cudaMemcpyAsync = [](void* dst, const void* src, std::size_t n, cudaMemcpyKind, cudaStream_t) {
    if (n) std::memmove(dst, src, n);
    return cudaSuccess;
  };
  r.cudaMemset = [](void* p, int v, std::size_t n) {
    std::memset(p, v, n);
    return cudaSuccess;
  };
  r.cudaMemsetAsync = [](void* p, int v, std::size_t n, cudaStream_t) {
    std::memset(p, v, n);
    return cudaSuccess;
  };
  r.cudaStreamCreate = [](cudaStream_t* s) {
    *s = reinterpret_cast<cudaStream_t>(&stream_token);
    return cudaSuccess;
  };
  r.cudaStreamCreateWithFlags = [](cudaStream_t* s, unsigned) {
    *s = reinterpret_cast<cudaStream_t>(&stream_token);
    return cudaSuccess;
  };
  r.cudaStreamDestroy = [](cudaStream_t) { return cudaSuccess; };
  r.cudaStreamSynchronize = [](cudaStream_t) { return cudaSuccess; };
  r.cudaStreamWaitEvent = [](cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; };
  r.cudaEventCreateWithFlags = [](cudaEvent_t* e, unsigned) {
    *e = reinterpret_cast<cudaEvent_t>(&stream_token);
    return cudaSuccess;
  };
  r.cudaEventRecord = [](cudaEvent_t, cudaStream_t) { return cudaSuccess; };
  r.cudaEventQuery = [](cudaEvent_t) { return cudaSuccess; };
  r.cudaEventDestroy = [](cudaEvent_t) { return cudaSuccess; };
  r.cudaIpcGetMemHandle = &fake_ipc_get;
  r.cudaIpcOpenMemHandle = &fake_ipc_open;
  r.cudaIpcCloseMemHandle = &fake_ipc_close;
  r.cudaPointerGetAttributes = &fake_attributes;
  r.reduce_spread = &fake_reduce_spread;
  return r;
}

int device_count(char*, std::size_t) { return 1; }

bool device_info(int i, char* name, std::size_t name_len, std::size_t* memory, int* major, int* minor) {
  if (i != 0) return false;
  std::snprintf(name, name_len, "troupe fake GPU (host memory)");
  *memory = std::size_t{1} << 30;
  *major = 9;
  *minor = 0;
  return true;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) const troupe::detail::CudaPlugin* troupe_cuda_plugin(int version) {
  if (version != troupe::detail::kCudaPluginVersion) return nullptr;
  static const troupe::coll::gpu::CudaRuntimeApi runtime_api = make_runtime();
  static const troupe::detail::CudaPlugin plugin = [] {
    troupe::detail::CudaPlugin p;
    p.version = troupe::detail::kCudaPluginVersion;
    p.device_count = &device_count;
    p.device_info = &device_info;
    p.runtime_api = &runtime_api;
    return p;
  }();
  return &plugin;
}
