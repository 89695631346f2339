#pragma once
// Splitting host loops across the compute threads (set_num_threads): the
// calling thread takes the first part, pool threads the rest. One loop at a
// time uses the pool; a second caller meanwhile runs its loop alone.
#include <cstdint>
#include <functional>

namespace troupe::compute::detail {

/// Runs fn(begin, end) over [0, n) in up to num_threads() contiguous parts of
/// at least grain elements each; returns when all are done.
void parallel_for(std::int64_t n, std::int64_t grain, const std::function<void(std::int64_t, std::int64_t)>& fn);

/// Resizes the pool (called by set_num_threads).
void set_pool_threads(int n);

}  // namespace troupe::compute::detail
