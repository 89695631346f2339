#pragma once
// Cell<T>: a CellBase that owns one T, re-creatable from its constructor arguments.
#include <functional>
#include <memory>

#include "runtime/actor_cell.hpp"

namespace troupe::detail {

template <class T>
class Cell final : public CellBase {
 public:
  using Factory = std::function<std::shared_ptr<T>()>;

  Cell(Runtime& rt, std::shared_ptr<ActorTable> table, Options opts, const char* type_name, Factory f)
      : CellBase(rt, std::move(table), std::move(opts), type_name), factory_(std::move(f)) {}

  /// Strand-only: the live instance (null between a failure and its restart).
  T* instance() const noexcept { return instance_.get(); }
  /// Strand-only: shared ownership, held by suspended coroutine calls so the
  /// object outlives them even if the actor dies or restarts meanwhile.
  const std::shared_ptr<T>& instance_ptr() const noexcept { return instance_; }

 protected:
  void create_instance() override { instance_ = factory_(); }
  void run_on_start() override {
    if constexpr (requires(T& t) { t.on_start(); }) instance_->on_start();
  }
  void run_on_stop() noexcept override {
    if constexpr (requires(T& t) { t.on_stop(); }) {
      try {
        instance_->on_stop();
      } catch (...) {
        // on_stop runs while the actor dies; an error there changes nothing.
      }
    }
  }
  void drop_instance() noexcept override { instance_.reset(); }

 private:
  Factory factory_;
  std::shared_ptr<T> instance_;
};

}  // namespace troupe::detail
