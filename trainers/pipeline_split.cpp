// How a pipeline's model is cut: blocks, the min-max partition, and the
// per-block time a split = "time" balances.
#include <algorithm>
#include <chrono>
#include <limits>

#include <fmt/format.h>

#include "actors/compute/ops.hpp"
#include "trainers/detail/pipeline_detail.hpp"
#include "trainers/pipeline.hpp"

namespace troupe::pipeline {

using compute::Tensor;

std::vector<std::pair<std::int64_t, std::int64_t>> model_blocks(const train::TrainConfig& cfg) {
  const std::int64_t per_hidden = 2 + (cfg.layernorm ? 1 : 0) + (cfg.dropout > 0 ? 1 : 0);
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  std::int64_t at = 0;
  for (std::size_t i = 0; i < cfg.hidden.size(); ++i, at += per_hidden) out.emplace_back(at, at + per_hidden);
  out.emplace_back(at, at + 1);  // the output layer
  return out;
}

std::vector<std::int64_t> balance(const std::vector<double>& costs, int parts) {
  const auto n = static_cast<int>(costs.size());
  if (parts < 1) throw UsageError("balance: at least one part");
  if (n < parts)
    throw UsageError(fmt::format("the model has {} blocks (hidden layers and the output layer), fewer than the {} model "
                                 "stages asked for: use fewer stages (or virtual stages), or a deeper model",
                                 n, parts));
  // best[p][i]: the smallest largest part when the first i blocks make p parts.
  std::vector<double> prefix(static_cast<std::size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) prefix[static_cast<std::size_t>(i) + 1] = prefix[static_cast<std::size_t>(i)] + costs[static_cast<std::size_t>(i)];
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(static_cast<std::size_t>(parts) + 1, std::vector<double>(static_cast<std::size_t>(n) + 1, inf));
  std::vector<std::vector<int>> cut(static_cast<std::size_t>(parts) + 1, std::vector<int>(static_cast<std::size_t>(n) + 1, 0));
  best[0][0] = 0;
  for (int p = 1; p <= parts; ++p)
    for (int i = p; i <= n; ++i)
      for (int j = p - 1; j < i; ++j) {
        const double v = std::max(best[static_cast<std::size_t>(p) - 1][static_cast<std::size_t>(j)],
                                  prefix[static_cast<std::size_t>(i)] - prefix[static_cast<std::size_t>(j)]);
        if (v < best[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)]) {
          best[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)] = v;
          cut[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)] = j;
        }
      }
  std::vector<std::int64_t> bounds(static_cast<std::size_t>(parts) + 1);
  bounds[static_cast<std::size_t>(parts)] = n;
  for (int p = parts, i = n; p > 0; --p) {
    i = cut[static_cast<std::size_t>(p)][static_cast<std::size_t>(i)];
    bounds[static_cast<std::size_t>(p) - 1] = i;
  }
  return bounds;
}

std::vector<double> detail::measure_blocks(const train::TrainConfig& cfg, const std::vector<std::pair<std::int64_t, std::int64_t>>& blocks) {
  compute::set_num_threads(cfg.threads);
  nn::Model whole = train::make_model(cfg);
  std::vector<double> out;
  Tensor x = Tensor::zeros({cfg.batch, cfg.inputs});
  {
    auto v = x.to_vector();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 2654435761u) % 1000) / 1000.0f;
    x = Tensor::from(v, {cfg.batch, cfg.inputs});
  }
  for (auto [b, e] : blocks) {
    const bool first = b == 0;  // the first stage computes no input gradient for it
    nn::Model part = whole.slice(static_cast<std::size_t>(b), static_cast<std::size_t>(e));
    nn::Tape tape;
    std::vector<double> runs;
    Tensor y;
    for (int k = 0; k < 5; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      y = part.forward(x, tape, {true, 1});
      Tensor dy = y.clone();
      part.backward(dy, tape, {}, !first);
      runs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(runs.begin(), runs.end());
    out.push_back(runs[runs.size() / 2]);
    x = y.clone();
  }
  return out;
}

}  // namespace troupe::pipeline
