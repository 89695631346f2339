// Collective groups: point-to-point batches, moved by the group's thread
// while it does other work (group.cpp has the thread and the operations).
#include <algorithm>
#include <tuple>

#include <fmt/format.h>

#include "runtime/coll/group.hpp"
#include "runtime/coll/detail/gpu.hpp"

namespace troupe::coll {

void Group::p2p_start(std::shared_ptr<P2PBatch> b) {
  // p2p_busy_ is already set: the thread set it as it took the batch.
  for (auto& t : b->items)
    if (!t.done) channels_[{t.peer, t.tag, t.is_send}].emplace_back(&t, b);  // (batch(): some may be done already)
  p2p_poll();
}

bool Group::p2p_inline(std::vector<Transfer>& items) {
  {
    std::lock_guard lock(mu_);
    if (!shm_ || spec_.memory != Memory::host || !shm_->p2p_nonblocking() || closing_ || running_ || p2p_busy_ ||
        !queue_.empty() || !failed_.empty())
      return false;
    running_ = true;
  }
  // Nothing is in flight, so each channel's first transfer of the batch is
  // its head: a send into a free slot, or a receive whose data is there,
  // finishes now, on this thread, with no hop to the group's thread.
  std::exception_ptr error;
  try {
    std::vector<Transfer*> heads;
    std::vector<std::tuple<std::uint32_t, std::uint32_t, bool>> seen;
    for (auto& t : items) {
      const auto key = std::make_tuple(t.peer, t.tag, t.is_send);
      if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
      seen.push_back(key);
      heads.push_back(&t);
    }
    shm_->p2p_progress(heads);
  } catch (...) {
    error = std::current_exception();
  }
  bool wake;
  {
    std::lock_guard lock(mu_);
    running_ = false;
    if (error && failed_.empty())
      failed_ = shm_->failure().empty() ? std::string("point-to-point transfer failed") : shm_->failure();
    wake = !queue_.empty();
    if (wake) shm_->bell_ring_self();
  }
  if (wake) cv_.notify_one();
  if (error) std::rethrow_exception(error);
  return true;
}

bool Group::p2p_poll() {
  // Called in a tight loop while transfers are in flight: the vectors are reused.
  auto& heads = p2p_heads_;
  auto& before = p2p_before_;
  heads.clear();
  before.clear();
  for (auto& [key, q] : channels_) {
    heads.push_back(q.front().first);
    before.push_back(q.front().first->progress);
  }
  std::vector<DoneFn> finished;
  bool moved = false;
  try {
    shm_->p2p_progress(heads);
    for (std::size_t i = 0; i < heads.size(); ++i) moved |= heads[i]->progress != before[i] || heads[i]->done;
  } catch (...) {
    auto e = std::current_exception();
    {
      std::lock_guard lock(mu_);
      if (failed_.empty()) failed_ = shm_->failure().empty() ? std::string("point-to-point transfer failed") : shm_->failure();
    }
    p2p_fail_all(e);
    return true;
  }
  for (auto it = channels_.begin(); it != channels_.end();) {
    auto& q = it->second;
    while (!q.empty() && q.front().first->done) {
      auto b = std::move(q.front().second);
      q.pop_front();
      if (--b->left == 0) finished.push_back(std::move(b->done));
    }
    it = q.empty() ? channels_.erase(it) : std::next(it);
  }
  if (channels_.empty()) {
    std::lock_guard lock(mu_);
    p2p_busy_ = false;
  }
  for (auto& d : finished) d(nullptr);
  return moved;
}

void Group::p2p_fail_all(std::exception_ptr e) {
  std::vector<DoneFn> failed;
  for (auto& [key, q] : channels_)
    for (auto& [t, b] : q)
      if (b->done) {
        failed.push_back(std::move(b->done));
        b->done = nullptr;
      }
  channels_.clear();
  {
    std::lock_guard lock(mu_);
    p2p_busy_ = false;
  }
  for (auto& d : failed) d(e);
}

Ref<void> Group::batch(Batch b) {
  if (b.items_.empty()) return Ref<void>::from_value();
  std::size_t bytes = 0;
  for (const auto& t : b.items_) bytes += t.n * size_of(t.dtype);
  count(bytes);
  const auto t0 = trace_t0();
  const char* what = b.items_.size() == 1 ? (b.items_[0].is_send ? "send" : "recv") : "send/recv";
  return traced(post(std::move(b)), what, bytes, t0);
}

Ref<void> Group::post(Batch b) {
  for (const auto& t : b.items_) {
    if (t.peer >= size() || t.peer == rank())
      return fail_now(fmt::format("rank {} cannot {} rank {} (ranks 0-{}, not itself)", rank(),
                                  t.is_send ? "send to" : "receive from", t.peer, size() - 1));
    if (t.tag >= kP2PTags) return fail_now(fmt::format("tag {}: tags go from 0 to {}", t.tag, kP2PTags - 1));
    if (spec_.memory == Memory::cuda) {
      try {
        gpu::check_device_buffer(spec_, device(), t.buf, t.n * size_of(t.dtype), t.is_send ? "send" : "recv");
      } catch (...) {
        return Ref<void>::from_error(std::current_exception());
      }
    }
  }
  // Host groups with nothing in flight move what they can right here.
  try {
    if (p2p_inline(b.items_) &&
        std::all_of(b.items_.begin(), b.items_.end(), [](const Transfer& t) { return t.done; }))
      return Ref<void>::from_value();
  } catch (...) {
    return Ref<void>::from_error(std::current_exception());
  }
  const auto id = next_id_.fetch_add(1, std::memory_order_relaxed);
  auto p = promise_for(id);
  auto ref = p->ref();
  auto batch = std::make_shared<P2PBatch>();
  batch->items = std::move(b.items_);
  batch->left = static_cast<std::size_t>(
      std::count_if(batch->items.begin(), batch->items.end(), [](const Transfer& t) { return !t.done; }));
  batch->done = complete_with(std::move(p));
  const std::uint32_t me = rank();
  if (spec_.memory == Memory::cuda) batch->before = ordered([](Backend&) {});
  OpFn op = ordered([batch, me](Backend& g) { g.p2p_batch(batch->items, me); });
  {
    std::lock_guard lock(mu_);
    if (!closing_) {
      queue_.push_back({std::move(op), batch->done, id, batch});
      has_work_.store(true, std::memory_order_release);
      wake_locked();
      return ref;
    }
  }
  batch->done(std::make_exception_ptr(CollectiveError(fmt::format("group '{}' was destroyed", spec_.name))));
  return ref;
}

}  // namespace troupe::coll
