#include "runtime/coll/group.hpp"

#include <chrono>
#include <map>

#include <fmt/format.h>

#include "runtime/coll/tcp.hpp"
#include "runtime/context.hpp"

namespace troupe::coll {

Group::Group(GroupSpec spec) : spec_(std::move(spec)) {
  thread_ = std::thread([this]() { run(); });
}

Group::~Group() { destroy(); }

void Group::run() {
  try {
    std::unique_ptr<Backend> shm;
    if (spec_.backend == "tcp")
      shm = std::make_unique<TcpGroup>(spec_, &cancel_);
    else
      shm = std::make_unique<ShmGroup>(spec_, &cancel_);
    std::lock_guard lock(mu_);
    shm_ = std::move(shm);
    if (!pending_abort_.empty()) shm_->abort(static_cast<std::int32_t>(spec_.rank), pending_abort_);
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    failed_ = e.what();
  }
  for (;;) {
    OpFn op;
    DoneFn done;
    // Poll briefly before sleeping: a rank that issues operations back to back
    // (a training step's buckets, a benchmark) then never pays a wake-up.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
    while (!has_work_.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&]() { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;
      op = std::move(queue_.front().first);
      done = std::move(queue_.front().second);
      queue_.pop_front();
      has_work_.store(!queue_.empty() || closing_, std::memory_order_release);
    }
    std::string failed;
    {
      std::lock_guard lock(mu_);
      failed = failed_;
    }
    if (!failed.empty()) {
      done(std::make_exception_ptr(CollectiveError(failed)));
      continue;
    }
    std::exception_ptr error;
    try {
      op(*shm_);
    } catch (const CollectiveError& e) {
      std::lock_guard lock(mu_);
      if (failed_.empty() && !shm_->failure().empty()) failed_ = e.what();  // sticky once the group failed
      error = std::current_exception();
    } catch (...) {
      error = std::current_exception();
    }
    done(error);
  }
}

Ref<void> Group::submit(OpFn op) {
  auto p = std::make_shared<Promise<void>>();
  auto ref = p->ref();
  enqueue(std::move(op), [p](std::exception_ptr e) {
    if (e)
      p->set_error(e);
    else
      p->set_value();
  });
  return ref;
}

void Group::enqueue(OpFn op, DoneFn done) {
  {
    std::lock_guard lock(mu_);
    if (!closing_) {
      queue_.emplace_back(std::move(op), std::move(done));
      has_work_.store(true, std::memory_order_release);
      cv_.notify_one();
      return;
    }
  }
  done(std::make_exception_ptr(CollectiveError(fmt::format("group '{}' was destroyed", spec_.name))));
}

Ref<void> Group::fail_now(std::string why) {
  return Ref<void>::from_error(std::make_exception_ptr(UsageError(fmt::format("group '{}': {}", spec_.name, why))));
}

Ref<void> Group::barrier() {
  return submit([](Backend& g) { g.barrier(); });
}

void Group::abort(const std::string& why) {
  std::lock_guard lock(mu_);
  if (shm_) {
    shm_->abort(static_cast<std::int32_t>(spec_.rank), why);
  } else {
    pending_abort_ = why;
    cancel_ = true;
  }
}

void Group::destroy() {
  {
    std::lock_guard lock(mu_);
    if (closing_ && !thread_.joinable()) return;
    if (!closing_) {
      closing_ = true;
      has_work_ = true;
      const std::string why = fmt::format("rank {} destroyed the group", spec_.rank);
      if (shm_) {
        shm_->abort(static_cast<std::int32_t>(spec_.rank), why);
      } else {
        pending_abort_ = why;
        cancel_ = true;
      }
    }
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  // Operations still queued fail: the group is gone.
  std::deque<std::pair<OpFn, DoneFn>> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
  }
  for (auto& [op, done] : left)
    done(std::make_exception_ptr(CollectiveError(fmt::format("group '{}' was destroyed", spec_.name))));
}

namespace {
std::mutex registry_mu;
std::map<std::pair<std::uint64_t, std::string>, std::shared_ptr<Group>>& registry() {
  static auto* m = new std::map<std::pair<std::uint64_t, std::string>, std::shared_ptr<Group>>();
  return *m;
}
}  // namespace

namespace detail {

void declare(std::uint64_t actor_id, const GroupSpec& spec) {
  auto g = std::make_shared<Group>(spec);
  std::shared_ptr<Group> old;
  {
    std::lock_guard lock(registry_mu);
    auto& slot = registry()[{actor_id, spec.name}];
    old = std::move(slot);
    slot = std::move(g);
  }
  if (old) old->destroy();
}

void abort_member(std::uint64_t actor_id, const std::string& name, std::uint64_t uid, const std::string& why) {
  std::shared_ptr<Group> g;
  {
    std::lock_guard lock(registry_mu);
    auto it = registry().find({actor_id, name});
    if (it != registry().end() && it->second->uid() == uid) g = it->second;
  }
  if (g) g->abort(why);
}

}  // namespace detail

std::shared_ptr<Group> group(const std::string& name) {
  const auto id = troupe::current_actor_id();
  if (!id) throw UsageError(fmt::format("coll::group('{}') outside an actor", name));
  std::lock_guard lock(registry_mu);
  auto it = registry().find({id, name});
  if (it == registry().end())
    throw UsageError(fmt::format("actor #{} is not a member of a collective group '{}'", id, name));
  return it->second;
}

}  // namespace troupe::coll
