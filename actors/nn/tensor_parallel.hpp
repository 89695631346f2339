#pragma once
// Tensor-parallel linear layers: Megatron-LM's split of an MLP block over the
// tp ranks of a group.
//
// A column-parallel Linear holds rows [r * out / tp, (r + 1) * out / tp) of the
// unsplit layer's weight and bias: from the whole input it computes its share
// of the output features. A row-parallel Linear holds the matching columns of
// its weight: from its share of the input features it computes a partial
// output, summed over the group; tp rank 0 holds the bias. Between them, an
// element-wise activation runs on the share. The conjugate pair:
//   f, before the column-parallel layer: identity forward, all-reduce of the
//      input gradient backward;
//   g, after the row-parallel layer: all-reduce of the output forward,
//      identity backward.
// So a column- then row-parallel block costs one all-reduce forward and one
// backward, and holds 1/tp of the block's parameters. Each shard is
// initialised as that part of the unsplit layer (same seed, same values).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/nn/layers.hpp"

namespace troupe::nn {

/// Where a layer sits in its tensor-parallel group, and how the group sums:
/// `sum(t)` replaces t by the sum of every rank's t, in place, and returns
/// once it has (a coll::Group allreduce, waited for).
struct TensorParallel {
  int rank = 0;
  int size = 1;
  std::function<void(Tensor&)> sum;
};

/// How a parameter (or its optimizer state) lies over the tp ranks:
/// whole on every rank; its rows (a column-parallel Linear's weight and
/// bias) or its columns (a row-parallel weight) cut in tp equal parts in
/// rank order; or whole on rank 0 and absent elsewhere (a row-parallel bias).
enum class TpLayout : std::uint8_t { whole, rows, columns, first_rank };

/// Rank `rank` of `size`'s part of `full` (a host tensor); undefined where
/// the rank holds none (first_rank, rank > 0).
Tensor tp_shard(const Tensor& full, TpLayout how, int rank, int size);
/// The whole tensor from every rank's part (parts[r]: rank r's, host tensors).
Tensor tp_unshard(const std::vector<Tensor>& parts, TpLayout how);

/// What both split Linears share: the unsplit layer's shape, the group, and
/// this rank's shard as a plain Linear.
class ParallelLinear : public Layer {
 public:
  void backward_weight(Saved& saved) override { shard_->backward_weight(saved); }
  std::vector<Param*> params() override { return shard_->params(); }
  const TensorParallel& tp() const noexcept { return tp_; }
  std::int64_t in_features() const noexcept { return in_; }
  std::int64_t out_features() const noexcept { return out_; }

 protected:
  ParallelLinear() = default;
  ParallelLinear(std::int64_t in, std::int64_t out, TensorParallel tp) : in_(in), out_(out), tp_(std::move(tp)) {}
  // A copy of this layer, shard included, as a D.
  template <class D>
  std::unique_ptr<Layer> copy_as() const {
    auto l = std::unique_ptr<D>(new D());
    l->in_ = in_;
    l->out_ = out_;
    l->tp_ = tp_;
    l->shard_.reset(static_cast<Linear*>(shard_->clone().release()));
    return l;
  }
  std::int64_t in_ = 0, out_ = 0;  // the unsplit layer's
  TensorParallel tp_;
  std::unique_ptr<Linear> shard_;
};

class ColumnParallelLinear final : public ParallelLinear {
 public:
  /// The shard of Linear(in, out, bias, seed) for tp; UsageError unless tp.size divides out.
  ColumnParallelLinear(std::int64_t in, std::int64_t out, bool bias, std::uint64_t seed, TensorParallel tp);
  std::string kind() const override { return "linear_column_parallel"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x, Saved& saved, const Mode& mode) override;
  Tensor backward(const Tensor& dy, Saved& saved, bool need_dx) override;
  Tensor backward_input(const Tensor& dy, Saved& saved, bool need_dx) override;
  std::unique_ptr<Layer> clone() const override { return copy_as<ColumnParallelLinear>(); }

 private:
  friend class ParallelLinear;
  ColumnParallelLinear() = default;  // shard [out / tp, in]
};

class RowParallelLinear final : public ParallelLinear {
 public:
  /// The shard of Linear(in, out, bias, seed) for tp; UsageError unless tp.size divides in.
  RowParallelLinear(std::int64_t in, std::int64_t out, bool bias, std::uint64_t seed, TensorParallel tp);
  std::string kind() const override { return "linear_row_parallel"; }
  std::string describe() const override;
  Tensor forward(const Tensor& x, Saved& saved, const Mode& mode) override;
  Tensor backward(const Tensor& dy, Saved& saved, bool need_dx) override { return shard_->backward(dy, saved, need_dx); }
  Tensor backward_input(const Tensor& dy, Saved& saved, bool need_dx) override {
    return shard_->backward_input(dy, saved, need_dx);
  }
  std::unique_ptr<Layer> clone() const override { return copy_as<RowParallelLinear>(); }

 private:
  friend class ParallelLinear;
  RowParallelLinear() = default;  // shard [out, in / tp], with the bias on tp rank 0
};

}  // namespace troupe::nn
