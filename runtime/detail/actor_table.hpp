#pragma once
// A runtime's live in-process actors, by id and by name. The runtime and each
// of its cells share it: a cell leaves it as it dies, even one that finishes
// after its runtime gave up waiting for it at shutdown.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace troupe::detail {

class CellBase;

class ActorTable {
 public:
  /// Throws DuplicateName if the name is taken, UsageError once closed.
  void adopt(const std::shared_ptr<CellBase>& cell);
  /// The live actor called `name`; ActorNotFound if none.
  std::shared_ptr<CellBase> find(const std::string& name) const;
  void forget(const CellBase& cell);
  /// Refuses later spawns; returns the actors alive now.
  std::vector<std::shared_ptr<CellBase>> close();
  bool closed() const;
  std::size_t size() const;
  /// The actors alive now.
  std::vector<std::shared_ptr<CellBase>> live() const;

 private:
  mutable std::mutex mu_;
  bool closed_ = false;
  std::unordered_map<std::uint64_t, std::shared_ptr<CellBase>> live_;
  std::unordered_map<std::string, std::uint64_t> names_;
};

}  // namespace troupe::detail
