#pragma once
// Which examples each replica sees, in which order, in batches.
#include <cstdint>
#include <vector>

#include "actors/data/idx.hpp"

namespace troupe::data {

/// torch.utils.data.DistributedSampler's contract: every epoch a permutation
/// of [0, n) (seeded by seed + epoch, the same on every replica), padded by
/// repeating its start to a multiple of replicas (or cut down with drop_last),
/// and replica r takes positions r, r + replicas, ... Every replica gets the
/// same count; together they cover the data set once.
class DistributedSampler {
 public:
  DistributedSampler(std::int64_t n, int replicas, int rank, bool shuffle = true, std::uint64_t seed = 0,
                     bool drop_last = false);
  void set_epoch(std::int64_t epoch) noexcept { epoch_ = epoch; }
  std::vector<std::int64_t> indices() const;
  std::int64_t per_replica() const noexcept { return per_replica_; }

 private:
  std::int64_t n_;
  int replicas_, rank_;
  bool shuffle_;
  std::uint64_t seed_;
  bool drop_last_;
  std::int64_t epoch_ = 0, per_replica_ = 0;
};

/// A seeded permutation of [0, n) (Fisher-Yates on splitmix64): the same everywhere.
std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed);

/// Gathers batches of a data set by index into reused buffers.
class Batcher {
 public:
  /// drop_last: a final partial batch is skipped.
  Batcher(const Dataset& data, std::vector<std::int64_t> order, std::int64_t batch, bool drop_last = false);
  /// The next batch (views into buffers reused by the following call); false at the end.
  bool next(Tensor& images, Tensor& labels);
  std::int64_t batches() const noexcept;

 private:
  const Dataset& data_;
  std::vector<std::int64_t> order_;
  std::int64_t batch_, pos_ = 0;
  bool drop_last_;
  Tensor xbuf_, ybuf_;
};

}  // namespace troupe::data
