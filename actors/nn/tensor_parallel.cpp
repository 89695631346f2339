#include "actors/nn/tensor_parallel.hpp"

#include <fmt/format.h>

namespace troupe::nn {

namespace {

void check_tp(const char* layer, const TensorParallel& tp, std::int64_t width, const char* what) {
  if (tp.size < 1 || tp.rank < 0 || tp.rank >= tp.size)
    throw UsageError(fmt::format("{}: tp rank {} of {} is not a rank of the group", layer, tp.rank, tp.size));
  if (width % tp.size != 0)
    throw UsageError(fmt::format("{}: tp = {} does not divide its {} features ({})", layer, tp.size, what, width));
  if (tp.size > 1 && !tp.sum) throw UsageError(fmt::format("{}: tp = {} needs the group's sum", layer, tp.size));
}

}  // namespace

Tensor tp_shard(const Tensor& full, TpLayout how, int rank, int size) {
  switch (how) {
    case TpLayout::whole: return full.clone();
    case TpLayout::first_rank: return rank == 0 ? full.clone() : Tensor();
    case TpLayout::rows: {
      const std::int64_t n = full.size(0) / size;
      return full.narrow(rank * n, n).clone();
    }
    case TpLayout::columns: {
      const auto all = full.to_vector();
      const std::int64_t rows = full.size(0), cols = full.size(1), n = cols / size, c0 = rank * n;
      std::vector<float> out(static_cast<std::size_t>(rows * n));
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < n; ++c)
          out[static_cast<std::size_t>(r * n + c)] = all[static_cast<std::size_t>(r * cols + c0 + c)];
      return Tensor::from(out, {rows, n});
    }
  }
  return Tensor();
}

Tensor tp_unshard(const std::vector<Tensor>& parts, TpLayout how) {
  if (parts.empty() || !parts[0].defined()) throw UsageError("tp_unshard: no part from rank 0");
  if (how == TpLayout::whole || how == TpLayout::first_rank || parts.size() == 1) return parts[0].clone();
  for (std::size_t r = 1; r < parts.size(); ++r)
    if (!parts[r].defined() || parts[r].shape() != parts[0].shape())
      throw UsageError(fmt::format("tp_unshard: rank {}'s part is {}, rank 0's {}", r,
                                   parts[r].defined() ? parts[r].describe() : std::string("missing"), parts[0].describe()));
  const auto T = static_cast<std::int64_t>(parts.size());
  if (how == TpLayout::rows) {
    std::vector<float> all;
    for (auto& p : parts) {
      auto v = p.to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    Shape shape = parts[0].shape();
    shape[0] *= T;
    return Tensor::from(all, shape);
  }
  const std::int64_t rows = parts[0].size(0), n = parts[0].size(1);
  std::vector<float> all(static_cast<std::size_t>(rows * n * T));
  for (std::int64_t t = 0; t < T; ++t) {
    const auto v = parts[static_cast<std::size_t>(t)].to_vector();
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < n; ++c)
        all[static_cast<std::size_t>(r * n * T + t * n + c)] = v[static_cast<std::size_t>(r * n + c)];
  }
  return Tensor::from(all, {rows, n * T});
}

ColumnParallelLinear::ColumnParallelLinear(std::int64_t in, std::int64_t out, bool bias, std::uint64_t seed,
                                           TensorParallel tp)
    : ParallelLinear(in, out, std::move(tp)) {
  check_tp("column-parallel linear", tp_, out, "output");
  Linear whole(in, out, bias, seed);
  shard_ = std::make_unique<Linear>(tp_shard(whole.weight().value, TpLayout::rows, tp_.rank, tp_.size),
                                    bias ? tp_shard(whole.bias().value, TpLayout::rows, tp_.rank, tp_.size) : Tensor());
}

std::string ColumnParallelLinear::describe() const {
  return fmt::format("linear({} -> {}, column-parallel: outputs {}-{} on tp rank {} of {})", in_, out_,
                     tp_.rank * (out_ / tp_.size), (tp_.rank + 1) * (out_ / tp_.size) - 1, tp_.rank, tp_.size);
}

Tensor ColumnParallelLinear::forward(const Tensor& x, Saved& saved, const Mode& mode) {
  return shard_->forward(x, saved, mode);  // f: the input as it is
}

Tensor ColumnParallelLinear::backward(const Tensor& dy, Saved& saved, bool need_dx) {
  Tensor dx = shard_->backward(dy, saved, need_dx);
  if (need_dx && tp_.size > 1) tp_.sum(dx);  // f's backward: every shard's part of the input gradient
  return dx;
}

Tensor ColumnParallelLinear::backward_input(const Tensor& dy, Saved& saved, bool need_dx) {
  Tensor dx = shard_->backward_input(dy, saved, need_dx);
  if (need_dx && tp_.size > 1) tp_.sum(dx);
  return dx;
}


RowParallelLinear::RowParallelLinear(std::int64_t in, std::int64_t out, bool bias, std::uint64_t seed,
                                     TensorParallel tp)
    : ParallelLinear(in, out, std::move(tp)) {
  check_tp("row-parallel linear", tp_, in, "input");
  Linear whole(in, out, bias, seed);
  // The bias is added once: by tp rank 0, into its partial sum.
  shard_ = std::make_unique<Linear>(tp_shard(whole.weight().value, TpLayout::columns, tp_.rank, tp_.size),
                                    bias ? tp_shard(whole.bias().value, TpLayout::first_rank, tp_.rank, tp_.size) : Tensor());
}

std::string RowParallelLinear::describe() const {
  return fmt::format("linear({} -> {}, row-parallel: inputs {}-{} on tp rank {} of {})", in_, out_,
                     tp_.rank * (in_ / tp_.size), (tp_.rank + 1) * (in_ / tp_.size) - 1, tp_.rank, tp_.size);
}

Tensor RowParallelLinear::forward(const Tensor& x, Saved& saved, const Mode& mode) {
  Tensor y = shard_->forward(x, saved, mode);
  if (tp_.size > 1) tp_.sum(y);  // g: the partial outputs summed
  return y;
}


}  // namespace troupe::nn
