#include "actors/nn/model.hpp"
#include "actors/nn/tensor_parallel.hpp"

#include <fmt/format.h>

#include "actors/compute/errors.hpp"
#include "actors/nn/layers.hpp"

namespace troupe::nn {

std::vector<bool> tp_split_layers(const MlpSpec& spec, int tp) {
  std::vector<bool> split(spec.hidden.size(), false);
  for (std::size_t i : spec.tp_blocks) {
    if (i >= spec.hidden.size())
      throw UsageError(fmt::format("mlp: tensor-parallel block {} is not a hidden layer (there are {})", i,
                                   spec.hidden.size()));
    if (split[i]) throw UsageError(fmt::format("mlp: tensor-parallel block {} is listed twice", i));
    split[i] = true;
  }
  for (std::size_t i = 0; i + 1 < split.size(); ++i)
    if (split[i] && split[i + 1])
      throw UsageError(fmt::format("mlp: tensor-parallel blocks {} and {} overlap (the Linear between them would be "
                                   "both row- and column-parallel)",
                                   i, i + 1));
  for (std::size_t i = 0; i < split.size(); ++i) {
    if (!split[i]) continue;
    if (spec.layernorm || spec.dropout > 0.0f)
      throw UsageError(fmt::format("mlp: hidden layer {} is split by tp, so it cannot have {} (it would need the "
                                   "layer's whole width)",
                                   i, spec.layernorm ? "layernorm" : "dropout"));
    if (spec.hidden[i] % tp != 0)
      throw UsageError(fmt::format("mlp: tp = {} does not divide hidden layer {} (width {}): that layout cannot hold "
                                   "the model",
                                   tp, i, spec.hidden[i]));
  }
  return split;
}

namespace {

Model build_mlp(const MlpSpec& spec, std::uint64_t seed, const TensorParallel* tp) {
  if (spec.inputs <= 0 || spec.classes <= 0)
    throw UsageError(fmt::format("mlp: inputs ({}) and classes ({}) must be positive", spec.inputs, spec.classes));
  for (auto width : spec.hidden)
    if (width <= 0) throw UsageError(fmt::format("mlp: hidden width {} must be positive", width));
  auto split = tp_split_layers(spec, tp ? tp->size : 1);
  if (!tp) split.assign(split.size(), false);
  Model m;
  std::int64_t in = spec.inputs;
  // Each layer draws from its own stream: the seed and its position.
  auto layer_seed = [&](std::size_t pos) { return seed * 1000003ull + pos; };
  // The Linear that makes `out` from `in`: column-parallel if it makes a
  // split layer, row-parallel if it reads one.
  auto linear = [&](std::int64_t out, bool makes_split, bool reads_split) -> std::unique_ptr<Layer> {
    const auto s = layer_seed(m.size());
    if (makes_split) return std::make_unique<ColumnParallelLinear>(in, out, true, s, *tp);
    if (reads_split) return std::make_unique<RowParallelLinear>(in, out, true, s, *tp);
    return std::make_unique<Linear>(in, out, true, s);
  };
  bool prev_split = false;
  for (std::size_t i = 0; i < spec.hidden.size(); ++i) {
    const auto width = spec.hidden[i];
    m.add(linear(width, split[i], prev_split));
    if (spec.layernorm) m.add(std::make_unique<LayerNorm>(width));
    if (spec.activation == Activation::relu)
      m.add(std::make_unique<ReLU>());
    else
      m.add(std::make_unique<GELU>());
    if (spec.dropout > 0.0f) m.add(std::make_unique<Dropout>(spec.dropout, m.size()));
    in = width;
    prev_split = split[i];
  }
  m.add(linear(spec.classes, false, prev_split));
  return m;
}

}  // namespace

Model Model::mlp(const MlpSpec& spec, std::uint64_t seed) { return build_mlp(spec, seed, nullptr); }

std::map<std::string, TpLayout> mlp_param_layouts(const MlpSpec& spec, int tp) {
  // Rank 0's part names every parameter (it holds the row-parallel biases).
  const TensorParallel rank0{0, tp, [](Tensor&) {}};
  Model m = tp > 1 ? Model::mlp(spec, 0, rank0) : Model::mlp(spec, 0);
  std::map<std::string, TpLayout> out;
  for (std::size_t i = 0; i < m.size(); ++i) {
    const bool column = dynamic_cast<ColumnParallelLinear*>(&m.layer(i)) != nullptr;
    const bool row = dynamic_cast<RowParallelLinear*>(&m.layer(i)) != nullptr;
    for (Param* p : m.layer_params(i)) {
      const bool bias = p->name.size() >= 5 && p->name.compare(p->name.size() - 5, 5, ".bias") == 0;
      out[p->name] = column ? TpLayout::rows : !row ? TpLayout::whole : bias ? TpLayout::first_rank : TpLayout::columns;
    }
  }
  return out;
}

Model Model::mlp(const MlpSpec& spec, std::uint64_t seed, const TensorParallel& tp) {
  if (tp.size < 1 || tp.rank < 0 || tp.rank >= tp.size)
    throw UsageError(fmt::format("mlp: tp rank {} of {} is not a rank of the group", tp.rank, tp.size));
  return build_mlp(spec, seed, &tp);
}

void Model::add(std::unique_ptr<Layer> layer) {
  const std::size_t pos = index_.empty() ? 0 : index_.back() + 1;
  for (Param* p : layer->params())
    if (p->name.find('.') == std::string::npos) p->name = fmt::format("{}.{}", pos, p->name);
  layers_.push_back(std::move(layer));
  index_.push_back(pos);
}

Tensor Model::forward(const Tensor& x, Tape& tape, const Mode& mode) {
  if (tape.layers.size() != layers_.size()) tape.layers.resize(layers_.size());
  Tensor h = x;
  for (std::size_t i = 0; i < layers_.size(); ++i) h = layers_[i]->forward(h, tape.layers[i], mode);
  return h;
}

Tensor Model::backward(const Tensor& dy, Tape& tape, const std::function<void(std::size_t)>& grads_ready,
                       bool need_input_grad) {
  if (tape.layers.size() != layers_.size())
    throw UsageError("Model::backward: this tape holds no forward pass of this model");
  Tensor g = dy;
  for (std::size_t i = layers_.size(); i-- > 0;) {
    g = layers_[i]->backward(g, tape.layers[i], i > 0 || need_input_grad);
    if (grads_ready && !layers_[i]->params().empty()) grads_ready(i);
  }
  return g;
}

Tensor Model::backward_input(const Tensor& dy, Tape& tape, bool need_input_grad) {
  if (tape.layers.size() != layers_.size())
    throw UsageError("Model::backward_input: this tape holds no forward pass of this model");
  Tensor g = dy;
  for (std::size_t i = layers_.size(); i-- > 0;) g = layers_[i]->backward_input(g, tape.layers[i], i > 0 || need_input_grad);
  return g;
}

void Model::backward_weight(Tape& tape, const std::function<void(std::size_t)>& grads_ready) {
  if (tape.layers.size() != layers_.size())
    throw UsageError("Model::backward_weight: this tape holds no forward pass of this model");
  for (std::size_t i = layers_.size(); i-- > 0;) {
    layers_[i]->backward_weight(tape.layers[i]);
    if (grads_ready && !layers_[i]->params().empty()) grads_ready(i);
  }
}

std::vector<Param*> Model::params() {
  std::vector<Param*> out;
  for (auto& l : layers_)
    for (Param* p : l->params()) out.push_back(p);
  return out;
}

std::vector<Param*> Model::layer_params(std::size_t i) { return layers_.at(i)->params(); }

void Model::zero_grad() {
  for (Param* p : params()) p->grad_valid = false;
}

std::int64_t Model::num_params() {
  std::int64_t n = 0;
  for (Param* p : params()) n += p->value.numel();
  return n;
}

Model Model::slice(std::size_t begin, std::size_t end) const {
  if (begin > end || end > layers_.size())
    throw UsageError(fmt::format("slice [{}, {}) of a model with {} layers", begin, end, layers_.size()));
  Model m;
  for (std::size_t i = begin; i < end; ++i) {
    m.layers_.push_back(layers_[i]->clone());
    m.index_.push_back(index_[i]);
  }
  return m;
}

std::vector<Model> Model::split(const std::vector<std::size_t>& boundaries) const {
  std::vector<Model> stages;
  std::size_t begin = 0;
  for (auto b : boundaries) {
    if (b <= begin || b >= layers_.size())
      throw UsageError(fmt::format("split at {}: boundaries must ascend strictly inside (0, {})", b, layers_.size()));
    stages.push_back(slice(begin, b));
    begin = b;
  }
  stages.push_back(slice(begin, layers_.size()));
  return stages;
}

void Model::to(Device dev) {
  for (Param* p : params()) {
    p->value = p->value.to(dev);
    p->grad = p->grad.to(dev);
  }
}

Device Model::device() const {
  for (auto& l : layers_)
    for (Param* p : l->params()) return p->value.device();
  return Device::cpu();
}

std::string Model::summary() const {
  std::string s;
  for (std::size_t i = 0; i < layers_.size(); ++i) s += fmt::format("{}{}: {}", s.empty() ? "" : ", ", index_[i], layers_[i]->describe());
  return s;
}

}  // namespace troupe::nn
