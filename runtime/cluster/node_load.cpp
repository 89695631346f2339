#include "runtime/cluster/node_load.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <type_traits>

#include "runtime/cluster/detail/nvml_abi.hpp"

namespace troupe::cluster {

void to_proto(const NodeLoad& l, proto::NodeLoad::Builder b) {
  b.setCpuUtil(l.cpu);
  b.setMemUsedBytes(l.mem_used);
  b.setMemTotalBytes(l.mem_total);
  auto g = b.initGpus(static_cast<unsigned>(l.gpus.size()));
  for (unsigned i = 0; i < l.gpus.size(); ++i) {
    g[i].setIndex(l.gpus[i].index);
    g[i].setUtil(l.gpus[i].util);
    g[i].setMemUsedBytes(l.gpus[i].mem_used);
    g[i].setMemTotalBytes(l.gpus[i].mem_total);
  }
  auto w = b.initWorkers(static_cast<unsigned>(l.workers.size()));
  for (unsigned i = 0; i < l.workers.size(); ++i) {
    w[i].setActorId(l.workers[i].actor);
    w[i].setPid(l.workers[i].pid);
    w[i].setRssBytes(l.workers[i].rss);
    w[i].setCpuUtil(l.workers[i].cpu);
    w[i].setGpuMemBytes(l.workers[i].gpu_mem);
  }
}

NodeLoad load_from_proto(proto::NodeLoad::Reader r) {
  NodeLoad l;
  l.sampled = true;
  l.cpu = r.getCpuUtil();
  l.mem_used = r.getMemUsedBytes();
  l.mem_total = r.getMemTotalBytes();
  for (auto g : r.getGpus()) l.gpus.push_back({g.getIndex(), g.getUtil(), g.getMemUsedBytes(), g.getMemTotalBytes()});
  for (auto w : r.getWorkers())
    l.workers.push_back({w.getActorId(), w.getPid(), w.getRssBytes(), w.getCpuUtil(), w.getGpuMemBytes()});
  return l;
}

namespace {

// NVML through dlopen: the driver's library, its documented C ABI.
struct Nvml {
  using Device = void*;
  using Memory = nvml_abi::Memory;
  using Utilization = nvml_abi::Utilization;
  using Process = nvml_abi::Process;
  int (*init)() = nullptr;
  int (*count)(unsigned*) = nullptr;
  int (*handle)(unsigned, Device*) = nullptr;
  int (*memory)(Device, Memory*) = nullptr;
  int (*utilization)(Device, Utilization*) = nullptr;
  int (*processes)(Device, unsigned*, Process*) = nullptr;
  bool ok = false;
};

const Nvml& nvml() {
  static Nvml n;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    auto sym = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name)); };
    sym(n.init, "nvmlInit_v2");
    sym(n.count, "nvmlDeviceGetCount_v2");
    sym(n.handle, "nvmlDeviceGetHandleByIndex_v2");
    sym(n.memory, "nvmlDeviceGetMemoryInfo");
    sym(n.utilization, "nvmlDeviceGetUtilizationRates");
    sym(n.processes, "nvmlDeviceGetComputeRunningProcesses_v2");
    n.ok = n.init && n.count && n.handle && n.memory && n.init() == 0;
  });
  return n;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

bool LoadSampler::due() const { return last_time_ == 0 || now_s() - last_time_ >= 1.0; }

NodeLoad LoadSampler::sample(const std::map<std::uint64_t, pid_t>& workers) {
  NodeLoad l;
  l.sampled = true;
  {
    std::ifstream stat("/proc/stat");
    std::string cpu;
    std::uint64_t v[8] = {};
    stat >> cpu;
    for (auto& x : v) stat >> x;
    const std::uint64_t idle = v[3] + v[4];
    std::uint64_t total = 0;
    for (auto x : v) total += x;
    const std::uint64_t busy = total - idle;
    if (last_total_ && total > last_total_)
      l.cpu = static_cast<double>(busy - last_busy_) / static_cast<double>(total - last_total_);
    last_busy_ = busy;
    last_total_ = total;
  }
  {
    std::ifstream mem("/proc/meminfo");
    std::string key, unit;
    std::uint64_t kb = 0, total = 0, avail = 0;
    while (mem >> key >> kb) {
      std::getline(mem, unit);
      if (key == "MemTotal:") total = kb * 1024;
      if (key == "MemAvailable:") avail = kb * 1024;
    }
    l.mem_total = total;
    l.mem_used = total > avail ? total - avail : 0;
  }
  std::map<unsigned, std::uint64_t> gpu_mem;  // pid -> bytes
  if (const auto& n = nvml(); n.ok) {
    unsigned count = 0;
    n.count(&count);
    for (unsigned i = 0; i < count && i < 64; ++i) {
      Nvml::Device d = nullptr;
      if (n.handle(i, &d) != 0) continue;
      GpuLoad g;
      g.index = i;
      Nvml::Memory m{};
      if (n.memory(d, &m) == 0) g.mem_used = m.used, g.mem_total = m.total;
      Nvml::Utilization u{};
      if (n.utilization && n.utilization(d, &u) == 0) g.util = u.gpu / 100.0;
      if (n.processes) {
        Nvml::Process procs[256] = {};
        unsigned np = 256;
        if (n.processes(d, &np, procs) == 0)
          for (unsigned p = 0; p < np && p < 256; ++p) gpu_mem[procs[p].pid] += procs[p].used;
      }
      l.gpus.push_back(g);
    }
  }
  const double t = now_s();
  const double dt = last_time_ > 0 ? t - last_time_ : 0;
  last_time_ = t;
  static const long tick = ::sysconf(_SC_CLK_TCK);
  static const long page = ::sysconf(_SC_PAGESIZE);
  std::map<pid_t, std::uint64_t> ticks;
  for (const auto& [actor, pid] : workers) {
    WorkerLoad w;
    w.actor = actor;
    w.pid = static_cast<std::uint32_t>(pid);
    std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
    std::uint64_t size = 0, resident = 0;
    if (statm >> size >> resident) w.rss = resident * static_cast<std::uint64_t>(page);
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (std::getline(st, line)) {
      // Fields after the command (which may hold spaces): 14 utime, 15 stime.
      auto close = line.rfind(')');
      if (close != std::string::npos) {
        std::istringstream rest(line.substr(close + 2));
        std::string f;
        std::uint64_t ut = 0, stime = 0;
        for (int k = 3; k <= 15 && rest >> f; ++k) {
          if (k == 14) ut = std::stoull(f);
          if (k == 15) stime = std::stoull(f);
        }
        ticks[pid] = ut + stime;
        auto prev = last_ticks_.find(pid);
        if (prev != last_ticks_.end() && dt > 0 && ut + stime >= prev->second)
          w.cpu = static_cast<double>(ut + stime - prev->second) / static_cast<double>(tick) / dt;
      }
    }
    if (auto g = gpu_mem.find(static_cast<unsigned>(pid)); g != gpu_mem.end()) w.gpu_mem = g->second;
    l.workers.push_back(w);
  }
  last_ticks_ = std::move(ticks);
  return l;
}

}  // namespace troupe::cluster
