// troupe-bench allreduce-gpu in a build without CUDA and NCCL: no rows, a note.
#include "tools/bench/report.hpp"

namespace troupe::bench {

std::vector<Row> allreduce_gpu_rows(const AllreduceConfig&, std::vector<std::string>& notes) {
  notes.push_back("no rows: this build of troupe has no CUDA/NCCL (configure with the CUDA toolkit present)");
  return {};
}

}  // namespace troupe::bench
