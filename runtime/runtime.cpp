#include "runtime/runtime.hpp"

#include "runtime/cluster/client.hpp"
#include "runtime/device.hpp"
#include "runtime/net/auth.hpp"
#include "runtime/detail/process_role.hpp"
#include "runtime/remote/remote_actor.hpp"

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
  std::vector<std::shared_ptr<remote::RemoteActor>> procs;
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    if (current_actor()) throw UsageError("Runtime::shutdown() called from inside an actor");
    closed_ = true;
    for (auto& [id, cell] : live_) cells.push_back(cell);
    for (auto& w : processes_)
      if (auto p = w.lock()) procs.push_back(std::move(p));
  }
  // Worker processes go first: their sockets need the pool to deliver the news.
  for (auto& p : procs) p->shutdown();
  for (auto& p : procs) p->wait_dead(std::chrono::seconds(10));
  std::latch down(static_cast<std::ptrdiff_t>(cells.size()));
  for (auto& cell : cells) cell->post_death(DeathCause::runtime_shutdown, [&down]() { down.count_down(); });
  down.wait();
  std::shared_ptr<cluster::ClusterClient> link;
  {
    std::lock_guard lock(cluster_mu_);
    link = std::move(cluster_);
  }
  if (link) link->close();
  pool_handle_->detach();
  work_.reset();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Runtime::monitor_remote(remote::RemoteActor& r, MonitorFn fn) { r.add_monitor(std::move(fn)); }

void Runtime::adopt_remote(const std::shared_ptr<remote::RemoteActor>& r) {
  std::lock_guard lock(mu_);
  if (closed_) throw UsageError("spawn on a runtime that has been shut down");
  std::erase_if(processes_, [](auto& w) { return w.expired(); });
  processes_.push_back(r);
  r->set_owner(this);
}

std::string Runtime::cluster_address() const { return address_.empty() ? detail::default_address() : address_; }

std::shared_ptr<cluster::ClusterClient> Runtime::cluster_link() {
  std::lock_guard lock(cluster_mu_);
  if (cluster_) return cluster_;
  std::string address = cluster_address();
  if (address.empty()) {
    cluster_ = cluster::ClusterClient::embedded(io_);
  } else {
    cluster_ = cluster::ClusterClient::join(cluster::parse_address(address), net::resolve_token(token_, {}), io_);
  }
  return cluster_;
}

cluster::ClusterClient& Runtime::cluster() { return *cluster_link(); }

PlacementGroup Runtime::placement_group(std::vector<Resources> bundles, Strategy strategy, std::string name) {
  auto g = cluster_link()->create_group(name, strategy, bundles);
  PlacementGroup pg;
  pg.id = g.id;
  pg.strategy = strategy;
  pg.bundles = std::move(bundles);
  pg.nodes = std::move(g.bundle_nodes);
  return pg;
}

void Runtime::remove_placement_group(const PlacementGroup& pg) {
  if (!pg.valid()) throw UsageError("remove_placement_group of an empty PlacementGroup");
  cluster_link()->remove_group(pg.id);
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
