#pragma once
// Datasets for the replicas: IDX files (gzip or raw), Fashion-MNIST, and a
// distributed sampler with PyTorch's DistributedSampler semantics.
#include <cstdint>
#include <string>
#include <vector>

#include "actors/compute/tensor.hpp"
#include "runtime/errors.hpp"

namespace troupe::data {

using compute::Tensor;

/// A data file that is missing, truncated or not what it claims to be; the
/// message names the path and what is wrong.
class DataError : public Error {
 public:
  using Error::Error;
};

/// An IDX array (ubyte elements): its dimensions and bytes.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> bytes;
};

/// Reads an IDX file, gunzipping it when it is gzip (.gz or not).
IdxArray read_idx(const std::string& path);

/// Images as float32 [N, rows*cols], normalised ((x/255 - mean) / std), and int32 labels [N].
struct Dataset {
  Tensor images;
  Tensor labels;
  std::int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  std::int64_t features() const { return images.defined() ? images.size(1) : 0; }
};

enum class Split { train, test };

/// Fashion-MNIST's training-set statistics (of x/255).
constexpr float kFashionMnistMean = 0.2860f;
constexpr float kFashionMnistStd = 0.3530f;

/// Where Debian's dataset-fashion-mnist puts it; TROUPE_FASHION_MNIST overrides.
std::string fashion_mnist_dir();
/// Throws DataError naming the first of the four Fashion-MNIST files that is
/// not in `dir` (a driver checks before it starts replicas that would load it).
/// `chosen`: the folder was given (data_dir), not the default: the message
/// then names it instead of suggesting the package.
void check_fashion_mnist(const std::string& dir, bool chosen = false);

/// Loads a split from dir ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]).
Dataset load_fashion_mnist(const std::string& dir, Split split, float mean = kFashionMnistMean,
                           float std = kFashionMnistStd);

}  // namespace troupe::data
