// Built when CAF is not installed: the caf rows are skipped with a note.
#include "tools/bench/report.hpp"

namespace troupe::bench {

std::vector<Row> caf_actor_rows(const ActorBenchConfig&, std::vector<std::string>& notes) {
#if defined(TROUPE_BENCH_TSAN)
  notes.push_back("caf rows skipped: this is a ThreadSanitizer build and CAF is not instrumented");
  return {};
#endif
  notes.push_back("caf rows skipped: CAF (libcaf-dev) was not found when troupe was configured; "
                  "tools/install-peers.sh installs it, then re-run cmake");
  return {};
}

}  // namespace troupe::bench
