#pragma once
// A model is a list of layers run in order. It can be cut into contiguous
// stages (pipeline parallelism): stage k run on stage k-1's output gives
// exactly what the whole model gives.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/nn/layer.hpp"
#include "runtime/enum_words.hpp"

namespace troupe::nn {

/// What one forward pass kept, layer by layer, for its backward pass. Keep one
/// per micro-batch in flight and reuse it: its buffers are recycled.
struct Tape {
  std::vector<Saved> layers;
};

enum class Activation : std::uint8_t { relu, gelu };

}  // namespace troupe::nn

template <>
struct troupe::EnumWords<troupe::nn::Activation> {
  static constexpr std::array<std::string_view, 2> words{"relu", "gelu"};
};

namespace troupe::nn {

/// "relu", "gelu" (parse_enum<Activation> reads them).
constexpr std::string_view to_string(Activation a) noexcept { return enum_word(a); }

/// An MLP: input -> hidden... -> classes, each hidden layer Linear then
/// (LayerNorm) then the activation then (Dropout).
struct MlpSpec {
  std::int64_t inputs = 784;
  std::vector<std::int64_t> hidden{1024, 1024};
  std::int64_t classes = 10;
  Activation activation = Activation::relu;
  float dropout = 0.0f;
  bool layernorm = false;
  /// Tensor-parallel blocks: for each index i here, the Linear that makes
  /// hidden layer i is column-parallel and the one that reads it (the next
  /// Linear) row-parallel, so hidden layer i lives split over the tp ranks
  /// (Model::mlp with a TensorParallel; without one the model is unsplit).
  /// Blocks may not overlap (i and i + 1), and a split layer has no
  /// LayerNorm or Dropout (they would need its whole width).
  std::vector<std::size_t> tp_blocks;
};

struct TensorParallel;

/// Which hidden layers spec.tp_blocks splits, checked for tp ranks:
/// UsageError naming the block or layer that cannot be split so.
std::vector<bool> tp_split_layers(const MlpSpec& spec, int tp);
enum class TpLayout : std::uint8_t;
/// How each parameter of Model::mlp(spec, seed, {rank, tp}) lies over the tp
/// ranks, by name ("2.weight"); with tp = 1 every one is whole.
std::map<std::string, TpLayout> mlp_param_layouts(const MlpSpec& spec, int tp);

class Model {
 public:
  Model() = default;
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;

  /// Built and initialised from seed: the same seed gives the same parameters.
  static Model mlp(const MlpSpec& spec, std::uint64_t seed);
  /// This tp rank's part of that model: spec.tp_blocks split over tp (each
  /// shard holds the unsplit model's values), every other layer whole.
  /// UsageError naming the layer when tp does not divide a split width, or
  /// the blocks are not what MlpSpec::tp_blocks allows.
  static Model mlp(const MlpSpec& spec, std::uint64_t seed, const TensorParallel& tp);

  /// Appends a layer; its parameters are named "<position>.<name>".
  void add(std::unique_ptr<Layer> layer);

  Tensor forward(const Tensor& x, Tape& tape, const Mode& mode = {});
  /// From the gradient of the output; parameters' gradients are added to
  /// (written after zero_grad). grads_ready(i) runs as soon as layer i's are
  /// final, last layer first: hook gradient all-reduce buckets here.
  /// need_input_grad: return the input's gradient (a pipeline stage after the first).
  Tensor backward(const Tensor& dy, Tape& tape, const std::function<void(std::size_t)>& grads_ready = {},
                  bool need_input_grad = false);

  /// The split backward (zero-bubble schedules): input gradients through
  /// every layer, keeping what backward_weight needs; then the parameters'
  /// gradients. The two together give exactly what backward gives.
  Tensor backward_input(const Tensor& dy, Tape& tape, bool need_input_grad = false);
  void backward_weight(Tape& tape, const std::function<void(std::size_t)>& grads_ready = {});

  std::vector<Param*> params();
  std::vector<Param*> layer_params(std::size_t i);
  void zero_grad();  ///< marks gradients stale: the next backward writes them
  std::int64_t num_params();

  std::size_t size() const noexcept { return layers_.size(); }
  Layer& layer(std::size_t i) { return *layers_.at(i); }
  /// A copy of layers [begin, end), parameters included and named as here.
  Model slice(std::size_t begin, std::size_t end) const;
  /// Where layer i sat in the model this one was sliced from.
  std::size_t origin(std::size_t i) const { return index_.at(i); }
  /// Consecutive stages cut before each boundary index (ascending, inside (0, size())).
  std::vector<Model> split(const std::vector<std::size_t>& boundaries) const;
  /// Moves parameters and gradients to dev.
  void to(Device dev);
  Device device() const;
  std::string summary() const;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<std::size_t> index_;  // each layer's position in the model it was built as
};

}  // namespace troupe::nn
