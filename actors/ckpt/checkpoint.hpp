#pragma once
// Checkpoints: named tensors and string metadata in one file with a versioned
// header and a CRC-32 over everything, written atomically (temporary file,
// fsync, rename, fsync of the folder). A file that is corrupt, truncated, of
// another version or of another model is refused with an error saying which.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "actors/compute/tensor.hpp"
#include "runtime/errors.hpp"

namespace troupe::nn {
class Model;
struct Param;
}
namespace troupe::optim {
class Optimizer;
}

namespace troupe::ckpt {

using compute::Tensor;

class CheckpointError : public Error {
 public:
  using Error::Error;
};

constexpr std::uint32_t kFormatVersion = 1;

struct Checkpoint {
  std::map<std::string, std::string> meta;
  std::vector<std::pair<std::string, Tensor>> tensors;  ///< host tensors after load
  const Tensor* find(const std::string& name) const;
  /// meta[key]; CheckpointError "<path>: not <what>'s checkpoint (no '<key>')" without it.
  const std::string& require(const std::string& key, const std::string& path, const std::string& what) const;
  /// Checks meta["kind"] is `kind` and every identity entry matches, naming
  /// all that differs ("written with replicas = 2, but this run has replicas = 4").
  void check(const std::string& kind, const std::map<std::string, std::string>& identity, const std::string& path,
             const std::string& what) const;
};

void save(const std::string& path, const Checkpoint& c);
Checkpoint load(const std::string& path);

/// The model's parameters ("model/<name>") and, when given, the optimizer's
/// state ("optim/<name>", its kind, step count and learning rate), plus meta.
Checkpoint snapshot(nn::Model& model, optim::Optimizer* opt, std::map<std::string, std::string> meta = {});
/// Puts a snapshot back; a parameter missing, extra or of another shape, or
/// another optimizer kind, is a CheckpointError naming it (nothing is changed).
void restore(const Checkpoint& c, nn::Model& model, optim::Optimizer* opt);
/// The same for parameters from several models (a pipeline stage's chunks);
/// the optimizer's state goes to `dev`.
Checkpoint snapshot(const std::vector<nn::Param*>& params, optim::Optimizer* opt, std::map<std::string, std::string> meta);
void restore(const Checkpoint& c, const std::vector<nn::Param*>& params, compute::Device dev, optim::Optimizer* opt);

}  // namespace troupe::ckpt
