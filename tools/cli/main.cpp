// troupe: the command-line front end.
//   troupe version        the version and build configuration
//   troupe info           what this machine offers troupe (threads, GPUs)
#include <cstring>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "runtime/device.hpp"
#include "tools/cli/build_info.hpp"

namespace {

void usage(std::FILE* out) {
  fmt::print(out,
             "usage: troupe COMMAND\n"
             "commands:\n"
             "  version   print the version and build configuration\n"
             "  info      print what this machine offers (CPU threads, GPUs)\n"
             "  help      this text\n");
}

int info() {
  const auto& dev = troupe::devices();
  fmt::print("cpu threads : {}\n", std::thread::hardware_concurrency());
  fmt::print("cuda build  : {}\n", dev.cuda_built ? "yes" : "no");
  fmt::print("gpus        : {}\n", dev.status);
  for (const auto& g : dev.gpus)
    fmt::print("  cuda:{}  {}  {:.1f} GiB  sm_{}{}\n", g.index, g.name, g.memory_bytes / double(1ull << 30),
               g.compute_major, g.compute_minor);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    usage(stdout);
    return 0;
  }
  if (cmd == "version" || cmd == "--version") {
    fmt::print("troupe {}\n{}\n", TROUPE_VERSION, TROUPE_BUILD_CONFIG);
    return 0;
  }
  if (cmd == "info") return info();
  fmt::print(stderr, "troupe: unknown command '{}'\n", cmd);
  usage(stderr);
  return 2;
}
