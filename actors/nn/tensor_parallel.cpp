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

// Rows [r0, r0 + n) of a host matrix [rows, cols].
Tensor rows_of(const Tensor& m, std::int64_t r0, std::int64_t n) {
  return m.narrow(r0, n).clone();
}

// Columns [c0, c0 + n) of a host matrix [rows, cols].
Tensor cols_of(const Tensor& m, std::int64_t c0, std::int64_t n) {
  const auto all = m.to_vector();
  const std::int64_t rows = m.size(0), cols = m.size(1);
  std::vector<float> out(static_cast<std::size_t>(rows * n));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < n; ++c)
      out[static_cast<std::size_t>(r * n + c)] = all[static_cast<std::size_t>(r * cols + c0 + c)];
  return Tensor::from(out, {rows, n});
}

}  // namespace

ColumnParallelLinear::ColumnParallelLinear(std::int64_t in, std::int64_t out, bool bias, std::uint64_t seed,
                                           TensorParallel tp)
    : ParallelLinear(in, out, std::move(tp)) {
  check_tp("column-parallel linear", tp_, out, "output");
  Linear whole(in, out, bias, seed);
  const std::int64_t n = out / tp_.size, r0 = tp_.rank * n;
  shard_ = std::make_unique<Linear>(rows_of(whole.weight().value, r0, n),
                                    bias ? rows_of(whole.bias().value, r0, n) : Tensor());
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
  const std::int64_t n = in / tp_.size, c0 = tp_.rank * n;
  // The bias is added once: by tp rank 0, into its partial sum.
  shard_ = std::make_unique<Linear>(cols_of(whole.weight().value, c0, n),
                                    bias && tp_.rank == 0 ? whole.bias().value.clone() : Tensor());
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
