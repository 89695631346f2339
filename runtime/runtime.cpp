#include "runtime/runtime.hpp"

#include <condition_variable>
#include <set>

#include "runtime/detail/actor_table.hpp"
#include "runtime/detail/executor.hpp"
#include "runtime/detail/process_role.hpp"
#include "runtime/detail/registry.hpp"
#include "runtime/detail/waits.hpp"

namespace troupe {

namespace detail {

void ActorTable::adopt(const std::shared_ptr<CellBase>& cell) {
  std::lock_guard lock(mu_);
  if (closed_) throw UsageError("spawn on a runtime that has been shut down");
  if (!cell->name().empty()) {
    auto [it, inserted] = names_.emplace(cell->name(), cell->id());
    if (!inserted)
      throw DuplicateName(fmt::format("an actor named '{}' already exists (#{})", cell->name(), it->second));
  }
  live_.emplace(cell->id(), cell);
}

std::shared_ptr<CellBase> ActorTable::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = names_.find(name);
  if (it == names_.end()) throw ActorNotFound(fmt::format("no live actor named '{}'", name));
  return live_.at(it->second);
}

void ActorTable::forget(const CellBase& cell) {
  std::shared_ptr<CellBase> keep;  // destroyed outside the lock
  std::lock_guard lock(mu_);
  auto it = live_.find(cell.id());
  if (it == live_.end()) return;
  keep = std::move(it->second);
  live_.erase(it);
  if (!cell.name().empty()) names_.erase(cell.name());
}

std::vector<std::shared_ptr<CellBase>> ActorTable::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  std::vector<std::shared_ptr<CellBase>> out;
  for (auto& [id, cell] : live_) out.push_back(cell);
  return out;
}

std::vector<std::shared_ptr<CellBase>> ActorTable::live() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<CellBase>> out;
  for (auto& [id, cell] : live_) out.push_back(cell);
  return out;
}

bool ActorTable::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::size_t ActorTable::size() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

}  // namespace detail

Runtime::Runtime(RuntimeOptions opts) : table_(std::make_shared<detail::ActorTable>()) {
  if (detail::launched_as_worker()) detail::exit_worker_without_init();
  const unsigned n = opts.threads ? opts.threads : std::max(1u, std::thread::hardware_concurrency());
  observe_ = opts.observe;
  exec_ = detail::Executor::start(n, std::chrono::microseconds(opts.spin_us),
                                  opts.max_threads ? opts.max_threads : n + 64);
  pool_handle_ = exec_->pool();
  shutdown_timeout_ = opts.shutdown_timeout;
  address_ = opts.address;
  token_ = opts.token;
}

Runtime::~Runtime() { shutdown(); }

unsigned Runtime::threads() const noexcept { return exec_->size(); }

namespace {

// The actors shutdown still waits for; shared with their death callbacks,
// which may run after shutdown has given up waiting.
struct Pending {
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::uint64_t> ids;
};

std::string describe_stuck(const std::set<std::uint64_t>& ids) {
  std::string out;
  for (auto id : ids) {
    const auto wait = detail::describe_wait(id);
    out += fmt::format("\n  {}: {}", detail::actor_label(id), wait.empty() ? "inside a method" : wait);
  }
  return out;
}

}  // namespace

void Runtime::shutdown() {
  if (shut_.load()) return;
  if (current_actor()) throw UsageError("Runtime::shutdown() called from inside an actor");
  if (shut_.exchange(true)) return;
  const auto start = std::chrono::steady_clock::now();
  auto cells = table_->close();
  // Worker processes go first: their sockets need the pool to deliver the news.
  std::unique_ptr<detail::RuntimeExtension> ext;
  {
    std::lock_guard lock(ext_mu_);
    ext = std::move(ext_);
  }
  if (ext) ext->shutdown();
  auto pending = std::make_shared<Pending>();
  for (auto& cell : cells) pending->ids.insert(cell->id());
  for (auto& cell : cells)
    cell->post_death(DeathCause::runtime_shutdown, [pending, id = cell->id()]() {
      std::lock_guard lock(pending->mu);
      pending->ids.erase(id);
      pending->cv.notify_all();
    });
  auto all_dead = [&]() { return pending->ids.empty(); };
  const auto half = start + shutdown_timeout_ / 2, deadline = start + shutdown_timeout_;
  std::unique_lock lock(pending->mu);
  if (!pending->cv.wait_until(lock, half, all_dead)) {
    // Actors blocked in get() on a result that will never come (a Promise
    // nobody keeps): their waits are broken, so their methods can return.
    const std::vector<std::uint64_t> ids(pending->ids.begin(), pending->ids.end());
    lock.unlock();
    for (auto id : ids)
      detail::break_wait(id, "the runtime is shutting down and this actor's wait would never end");
    lock.lock();
    pending->cv.wait_until(lock, deadline, all_dead);
  }
  std::string stuck;
  if (!pending->ids.empty()) stuck = describe_stuck(pending->ids);
  lock.unlock();
  ext.reset();  // closes the cluster link
  // An actor still inside a method needs the pool to finish dying when it
  // returns: the io_context is stopped only if none is.
  const auto left = exec_->stop(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::max(deadline - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration(0)) +
          std::chrono::milliseconds(100)),
      stuck.empty());
  if (!stuck.empty() || left > 0)
    fmt::print(stderr,
               "troupe: Runtime shutdown gave up after {} ms; {} pool thread(s) left running, still inside a call:{}\n",
               shutdown_timeout_.count(), left, stuck.empty() ? "\n  (not an actor's)" : stuck);
}

std::string Runtime::cluster_address() const { return address_.empty() ? detail::default_address() : address_; }

detail::RuntimeExtension& Runtime::extension() {
  std::lock_guard lock(ext_mu_);
  if (ext_) return *ext_;
  if (table_->closed()) throw UsageError("a runtime that has been shut down starts no process actors");
  auto make = detail::extension_factory();
  if (!make) detail::require_init("process actors and placement groups");
  ext_ = make(*this);
  return *ext_;
}

namespace {
// The extension if one can serve reports; never throws.
detail::RuntimeExtension* reporter(Runtime& rt) noexcept {
  if (!detail::extension_factory()) return nullptr;
  try {
    return &rt.extension();
  } catch (...) {
    return nullptr;  // shut down
  }
}
}  // namespace

void Runtime::report_job(const telemetry::JobStatus& job) noexcept {
  if (auto* ext = reporter(*this)) ext->report_job(job);
}

void Runtime::report_group(const telemetry::GroupStatus& group) noexcept {
  if (auto* ext = reporter(*this)) ext->report_group(group);
}

PlacementGroup Runtime::placement_group(std::vector<Resources> bundles, Strategy strategy, std::string name) {
  return extension().placement_group(std::move(bundles), strategy, std::move(name));
}

void Runtime::remove_placement_group(const PlacementGroup& pg) {
  if (!pg.valid()) throw UsageError("remove_placement_group of an empty PlacementGroup");
  extension().remove_placement_group(pg);
}

std::size_t Runtime::live_actors() const { return table_->size(); }

std::vector<telemetry::ActorSample> Runtime::actor_samples() const {
  std::vector<telemetry::ActorSample> out;
  for (const auto& cell : table_->live()) out.push_back(cell->stats());
  return out;
}

void Runtime::adopt(const std::shared_ptr<detail::CellBase>& cell) { table_->adopt(cell); }

std::shared_ptr<detail::CellBase> Runtime::find_cell(const std::string& name) const { return table_->find(name); }

}  // namespace troupe
