#include "runtime/runtime.hpp"

#include "runtime/detail/process_role.hpp"

#include <chrono>
#include <latch>

#include <boost/asio/post.hpp>

namespace troupe {

namespace detail {
PoolHandle* PoolHandle::create(boost::asio::io_context& io) {
  static std::mutex mu;
  static auto* all = new std::vector<std::unique_ptr<PoolHandle>>();  // reachable, never freed
  std::lock_guard lock(mu);
  all->push_back(std::unique_ptr<PoolHandle>(new PoolHandle(io)));
  return all->back().get();
}

void runtime_forget(Runtime& rt, CellBase& cell) { rt.forget(cell); }

}  // namespace detail

Runtime::Runtime(RuntimeOptions opts)
    : io_(std::make_shared<boost::asio::io_context>()),

      work_(boost::asio::make_work_guard(*io_)),
      pool_handle_(detail::PoolHandle::create(*io_)) {
  if (detail::launched_as_worker()) detail::exit_worker_without_init();
  spin_ = std::chrono::microseconds(opts.spin_us);
  address_ = opts.address;
  token_ = opts.token;
  unsigned n = opts.threads ? opts.threads : std::max(1u, std::thread::hardware_concurrency());
  threads_.reserve(n);
  for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this]() { run_pool_thread(); });
}

// A pool thread polls for a short while before it sleeps: a synchronous
// call-and-get ping-pong then finds the thread awake instead of paying a
// condition-variable wake-up (tens of microseconds) on every call. Only one
// idle thread spins at a time, so spinning never takes more than one core
// from the threads doing work.
void Runtime::run_pool_thread() {
  using clock = std::chrono::steady_clock;
  for (;;) {
    if (io_->poll() > 0) continue;
    if (io_->stopped()) return;
    int expected = 0;
    if (spin_.count() > 0 && spinners_.compare_exchange_strong(expected, 1)) {
      const auto until = clock::now() + spin_;
      std::size_t ran = 0;
      while (ran == 0 && clock::now() < until && !io_->stopped()) ran = io_->poll_one();
      spinners_.store(0);
      if (ran) continue;
    }
    if (io_->run_one() == 0) return;  // stopped, or out of work after shutdown
  }
}

Runtime::~Runtime() { shutdown(); }

void Runtime::shutdown() {
  std::vector<std::shared_ptr<detail::CellBase>> cells;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    if (current_actor()) throw UsageError("Runtime::shutdown() called from inside an actor");
    closed_ = true;
    for (auto& [id, cell] : live_) cells.push_back(cell);
  }
  // Worker processes go first: their sockets need the pool to deliver the news.
  std::unique_ptr<detail::RuntimeExtension> ext;
  {
    std::lock_guard lock(ext_mu_);
    ext = std::move(ext_);
  }
  if (ext) ext->shutdown();
  std::latch down(static_cast<std::ptrdiff_t>(cells.size()));
  for (auto& cell : cells) cell->post_death(DeathCause::runtime_shutdown, [&down]() { down.count_down(); });
  down.wait();
  ext.reset();  // closes the cluster link
  pool_handle_->detach();
  work_.reset();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::string Runtime::cluster_address() const { return address_.empty() ? detail::default_address() : address_; }

detail::RuntimeExtension& Runtime::extension() {
  std::lock_guard lock(ext_mu_);
  if (ext_) return *ext_;
  {
    std::lock_guard l(mu_);
    if (closed_) throw UsageError("a runtime that has been shut down starts no process actors");
  }
  auto make = detail::extension_factory();
  if (!make) detail::require_init("process actors and placement groups");
  ext_ = make(*this);
  return *ext_;
}

PlacementGroup Runtime::placement_group(std::vector<Resources> bundles, Strategy strategy, std::string name) {
  return extension().placement_group(std::move(bundles), strategy, std::move(name));
}

void Runtime::remove_placement_group(const PlacementGroup& pg) {
  if (!pg.valid()) throw UsageError("remove_placement_group of an empty PlacementGroup");
  extension().remove_placement_group(pg);
}

std::size_t Runtime::live_actors() const {
  std::lock_guard lock(mu_);
  return live_.size();
}

void Runtime::adopt(const std::shared_ptr<detail::CellBase>& cell) {
  std::lock_guard lock(mu_);
  if (closed_) throw UsageError("spawn on a runtime that has been shut down");
  if (!cell->name().empty()) {
    auto [it, inserted] = names_.emplace(cell->name(), cell->id());
    if (!inserted)
      throw DuplicateName(fmt::format("an actor named '{}' already exists (#{})", cell->name(), it->second));
  }
  live_.emplace(cell->id(), cell);
}

std::shared_ptr<detail::CellBase> Runtime::find_cell(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = names_.find(name);
  if (it == names_.end()) throw ActorNotFound(fmt::format("no live actor named '{}'", name));
  return live_.at(it->second);
}

void Runtime::forget(detail::CellBase& cell) {
  std::shared_ptr<detail::CellBase> keep;  // destroyed outside the lock
  std::lock_guard lock(mu_);
  auto it = live_.find(cell.id());
  if (it == live_.end()) return;
  keep = std::move(it->second);
  live_.erase(it);
  if (!cell.name().empty()) names_.erase(cell.name());
}

}  // namespace troupe
