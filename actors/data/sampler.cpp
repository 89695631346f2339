#include "actors/data/sampler.hpp"

#include <cstring>

#include <fmt/format.h>

#include "actors/nn/layers.hpp"

namespace troupe::data {

DistributedSampler::DistributedSampler(std::int64_t n, int replicas, int rank, bool shuffle, std::uint64_t seed,
                                       bool drop_last)
    : n_(n), replicas_(replicas), rank_(rank), shuffle_(shuffle), seed_(seed), drop_last_(drop_last) {
  if (replicas < 1) throw UsageError(fmt::format("DistributedSampler: {} replicas (at least 1)", replicas));
  if (rank < 0 || rank >= replicas)
    throw UsageError(fmt::format("DistributedSampler: rank {} is outside [0, {})", rank, replicas));
  if (n < 0) throw UsageError(fmt::format("DistributedSampler: data set size {}", n));
  per_replica_ = drop_last ? n / replicas : (n + replicas - 1) / replicas;
}

std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t seed) {
  std::vector<std::int64_t> p(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = i;
  nn::Rng rng(seed);
  for (std::int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.next() % static_cast<std::uint64_t>(i + 1));
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(j)]);
  }
  return p;
}

std::vector<std::int64_t> DistributedSampler::indices() const {
  std::vector<std::int64_t> all;
  if (shuffle_) {
    all = permutation(n_, seed_ + static_cast<std::uint64_t>(epoch_));
  } else {
    all.resize(static_cast<std::size_t>(n_));
    for (std::int64_t i = 0; i < n_; ++i) all[static_cast<std::size_t>(i)] = i;
  }
  const std::int64_t total = per_replica_ * replicas_;
  if (!all.empty())
    for (std::int64_t i = n_; i < total; ++i) all.push_back(all[static_cast<std::size_t>((i - n_) % n_)]);
  std::vector<std::int64_t> mine;
  mine.reserve(static_cast<std::size_t>(per_replica_));
  for (std::int64_t i = rank_; i < total; i += replicas_) mine.push_back(all[static_cast<std::size_t>(i)]);
  return mine;
}

Batcher::Batcher(const Dataset& data, std::vector<std::int64_t> order, std::int64_t batch, bool drop_last)
    : data_(data), order_(std::move(order)), batch_(batch), drop_last_(drop_last) {
  if (batch < 1) throw UsageError(fmt::format("batch size {} (at least 1)", batch));
  for (auto i : order_)
    if (i < 0 || i >= data.size())
      throw UsageError(fmt::format("example {} is outside the data set of {}", i, data.size()));
}

std::int64_t Batcher::batches() const noexcept {
  const auto n = static_cast<std::int64_t>(order_.size());
  return drop_last_ ? n / batch_ : (n + batch_ - 1) / batch_;
}

bool Batcher::next(Tensor& images, Tensor& labels) {
  const auto n = static_cast<std::int64_t>(order_.size());
  const std::int64_t left = n - pos_;
  if (left <= 0 || (drop_last_ && left < batch_)) return false;
  const std::int64_t b = std::min(batch_, left);
  const std::int64_t f = data_.features();
  if (!xbuf_.defined()) {
    xbuf_ = Tensor::empty({batch_, f});
    ybuf_ = Tensor::empty({batch_}, compute::DType::i32);
  }
  const float* src = data_.images.f32();
  const std::int32_t* lsrc = data_.labels.i32();
  float* x = xbuf_.f32();
  std::int32_t* y = ybuf_.i32();
  for (std::int64_t i = 0; i < b; ++i) {
    const auto idx = order_[static_cast<std::size_t>(pos_ + i)];
    std::memcpy(x + i * f, src + idx * f, static_cast<std::size_t>(f) * sizeof(float));
    y[i] = lsrc[idx];
  }
  pos_ += b;
  images = xbuf_.narrow(0, b);
  labels = ybuf_.narrow(0, b);
  return true;
}

}  // namespace troupe::data
