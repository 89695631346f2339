#include "runtime/detail/cuda_plugin.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include <fmt/format.h>

namespace troupe::detail {

namespace {

struct Loaded {
  const CudaPlugin* plugin = nullptr;
  std::string error;
};

std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* p = std::getenv("TROUPE_CUDA_PLUGIN"); p && *p) {
    out.emplace_back(p);
    return out;  // an explicit choice: nothing else is tried
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto root = exe.parent_path().parent_path();
    out.push_back((root / "lib" / "troupe" / TROUPE_CUDA_PLUGIN_NAME).string());
    out.push_back((root / "lib" / TROUPE_CUDA_PLUGIN_NAME).string());
  }
#ifdef TROUPE_CUDA_PLUGIN_INSTALLED
  out.emplace_back(TROUPE_CUDA_PLUGIN_INSTALLED);
#endif
  // Where the Debian packages put it (a program of one's own built against
  // troupe-dev lives anywhere).
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu/troupe/", "/usr/lib/troupe/", "/usr/local/lib/troupe/"})
    out.push_back(std::string(dir) + TROUPE_CUDA_PLUGIN_NAME);
#ifdef TROUPE_CUDA_PLUGIN_BUILT
  out.emplace_back(TROUPE_CUDA_PLUGIN_BUILT);
#endif
  return out;
}

Loaded load() {
  Loaded l;
#ifndef TROUPE_HAVE_CUDA
  l.error = "this build of troupe is CPU-only (no CUDA toolkit when it was configured)";
  return l;
#else
  std::string tried;
  for (const auto& path : candidates()) {
    if (::access(path.c_str(), F_OK) != 0) {
      tried += (tried.empty() ? "" : ", ") + path;
      continue;
    }
    void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      // It is there but does not load: say why (a CUDA runtime or NCCL missing on this machine).
      l.error = fmt::format("the CUDA plugin {} does not load here: {}", path, ::dlerror());
      return l;
    }
    using Entry = const CudaPlugin* (*)(int);
    auto entry = reinterpret_cast<Entry>(::dlsym(h, "troupe_cuda_plugin"));
    const CudaPlugin* p = entry ? entry(kCudaPluginVersion) : nullptr;
    if (!p || p->version != kCudaPluginVersion) {
      l.error = fmt::format("{} is not a troupe CUDA plugin of version {} (built by another troupe?)", path,
                            kCudaPluginVersion);
      return l;  // the handle stays open: harmless
    }
    l.plugin = p;
    return l;
  }
  l.error = fmt::format("no CUDA plugin ({}) was found: looked at {} (set TROUPE_CUDA_PLUGIN to its path)",
                        TROUPE_CUDA_PLUGIN_NAME, tried);
  return l;
#endif
}

const Loaded& loaded() {
  static const Loaded l = load();  // once per process, thread-safe
  return l;
}

}  // namespace

const CudaPlugin* cuda_plugin() noexcept {
  try {
    return loaded().plugin;
  } catch (...) {
    return nullptr;
  }
}

const std::string& cuda_plugin_error() noexcept { return loaded().error; }

bool cuda_plugin_built() noexcept {
#ifdef TROUPE_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace troupe::detail
