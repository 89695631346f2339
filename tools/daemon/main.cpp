// troupe-daemon: the per-node daemon (and, with --head, the cluster head).
//
// The cluster runtime (Cap'n Proto control plane, head, node daemons, worker
// processes) is the next milestone; until it lands this program refuses to
// start rather than pretend to serve, and says so.
#include <string>

#include <fmt/format.h>

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      fmt::print("usage: troupe-daemon --head [--port P] | --address HOST:PORT\n"
                 "The cluster daemon is not part of this build yet: troupe runs actors in one\n"
                 "process (embedded runtime) until the cluster milestone lands.\n");
      return 0;
    }
  }
  fmt::print(stderr,
             "troupe-daemon: the cluster runtime is not part of this build yet; "
             "drivers run on the embedded in-process runtime\n");
  return 2;
}
