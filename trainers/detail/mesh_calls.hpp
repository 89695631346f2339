#pragma once
// Internal to the trainers: calling every worker of a mesh and settling
// all the answers, waiting for restarted workers, ending a mesh.
#include <chrono>
#include <exception>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "runtime/troupe.hpp"
#include "trainers/run_loop.hpp"

namespace troupe::train::detail {

/// Job::live_ranks for a mesh: member a is `who(a)`, read through its handle.
template <class T, class Who>
std::vector<LiveRank> live_ranks(const Mesh<T>& mesh, Who&& who) {
  std::vector<LiveRank> out;
  for (std::size_t a = 0; a < mesh.size(); ++a) out.push_back({who(a), [ref = mesh[a]]() { return ref.progress(); }});
  return out;
}

/// Every member's call, each waited for; a failure is rethrown once all have
/// settled (a survivor must not still be training when the group is
/// rebuilt): a worker's death first, as the cause of its peers' collective
/// errors. Once one has failed, the others get `grace` to settle (their
/// groups fail them within their timeouts); one that still has not answered
/// is stuck (stopped, hung) and is killed, so that nothing waits on it.
/// `tied`: the members are tied by their collectives (a training step), so
/// they finish close together: once one has answered, the others get
/// `grace` past the time it took, and one that has not answered by then is
/// stuck as well (its peers had nothing left to wait for from it).
template <class R, class T, class F>
std::vector<R> call_all(Mesh<T>& mesh, F&& call, std::chrono::milliseconds limit,
                        std::chrono::milliseconds grace = std::chrono::seconds(30), bool tied = false) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  std::vector<Ref<R>> refs;
  for (auto& m : mesh.members()) refs.push_back(call(m));
  std::vector<R> out;
  std::exception_ptr first, died;
  std::string stuck;  // members killed once another had failed
  clock::time_point until{};  // once set: the members left answer by then or are stuck
  std::uint64_t answered = 0;  // tied: the member whose answer set `until`, and when
  double answered_s = 0;
  for (std::size_t i = 0; i < refs.size(); ++i) {
    auto& r = refs[i];
    const bool failing = first || died;
    try {
      if (until == clock::time_point{}) {
        out.push_back(r.get(limit));
      } else {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - clock::now());
        out.push_back(r.get(std::max(left, std::chrono::milliseconds(1))));
      }
      if (tied && !failing && until == clock::time_point{}) {
        const auto now = clock::now();
        until = now + grace + (now - start);
        answered = mesh.members()[i].id();
        answered_s = std::chrono::duration<double>(now - start).count();
      }
    } catch (const TimeoutError&) {
      if (until == clock::time_point{}) throw;  // the whole call ran past `limit`
      mesh.members()[i].kill();
      if (failing)
        stuck += fmt::format("{}{}", stuck.empty() ? "" : ", ", mesh.members()[i].id());
      else  // the others answered: this one is the failure
        first = std::make_exception_ptr(Error(
            fmt::format("actor {} answered after {:.1f} s and actor {} had not {:.1f} s later: it is stuck (stopped "
                        "or hung) and was killed",
                        answered, answered_s, mesh.members()[i].id(),
                        std::chrono::duration<double>(clock::now() - start).count() - answered_s)));
    } catch (const ActorDied&) {
      if (!died) died = std::current_exception();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
    if ((first || died) && !failing) until = clock::now() + grace;  // the first failure: the others settle within `grace`
  }
  auto rethrow = [&](std::exception_ptr e) {
    if (stuck.empty()) std::rethrow_exception(e);
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      throw Error(fmt::format("{} (actor {} did not answer within {:g} s after that and was killed)", x.what(), stuck,
                              std::chrono::duration<double>(grace).count()));
    }
  };
  if (died) rethrow(died);
  if (first) rethrow(first);
  return out;
}

/// Waits until every member answers `pid` (a killed one is restarted by the
/// runtime); Error naming `what` and the member otherwise.
template <class T>
void wait_all_alive(Mesh<T>& mesh, int (T::*pid)() const, const char* what, std::chrono::seconds limit) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (auto& m : mesh.members()) {
    for (;;) {
      try {
        m.call(pid).get(std::chrono::seconds(30));
        break;
      } catch (const std::exception& e) {
        if (!m.alive() || std::chrono::steady_clock::now() > until)
          throw Error(fmt::format("{} {} did not come back: {}", what, m.id(), e.what()));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
}

/// What one worker asks for ("CPU=1, GPU=1", or "nothing") and, when it
/// asks for GPUs this machine does not show, why ("" otherwise): the
/// Infeasible message of a mesh that does not fit.
std::pair<std::string, std::string> describe_request(const Options& o);

/// Stops every member, waiting a bounded time; members that do not stop are killed.
template <class T>
void stop_mesh(Mesh<T>& mesh) noexcept {
  try {
    mesh.stop().get(std::chrono::seconds(30));
  } catch (...) {
    mesh.kill();
  }
}

}  // namespace troupe::train::detail
