// Pipeline schedules: the check for device groups. NCCL matches the sends and
// receives between two ranks in the order they are posted, whatever their
// tag, and a posted group (ncclGroupStart/End) completes only as a whole. A
// stage on a device group therefore posts each run of consecutive transfers
// of its list as one group, in list order, one group at a time; this file
// simulates exactly that and refuses a schedule that would pair two
// different transfers or wait in a circle.
#include <algorithm>
#include <deque>
#include <tuple>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "trainers/detail/schedule_layout.hpp"
#include "trainers/schedule.hpp"

namespace troupe::pipeline {

using detail::is_comm;
using detail::Layout;
using detail::Peer;

namespace {

bool is_send(Op op) { return op == Op::SEND_F || op == Op::SEND_B; }

std::string where(int stage, std::size_t index, const Action& a) {
  return fmt::format("stage {}, action {} ({})", stage, index, to_string(a));
}

}  // namespace

std::vector<std::vector<std::vector<std::size_t>>> transfer_groups(const Schedule& s) {
  const Layout L{s.stages, s.virtual_stages};
  // Both ends of a transfer give it the same key: its kind, micro-batch and
  // the model-stage edge it crosses (the lower stage of the pair).
  auto key = [&](int r, const Action& a) {
    const int st = L.stage(r, a.chunk);
    const bool fwd = a.op == Op::SEND_F || a.op == Op::RECV_F;
    const int edge = (a.op == Op::SEND_F || a.op == Op::RECV_B) ? st : st - 1;
    return std::tuple{!fwd, a.mb, edge};
  };
  std::vector<std::vector<std::vector<std::size_t>>> out(s.actions.size());
  for (std::size_t r = 0; r < s.actions.size(); ++r) {
    const auto& list = s.actions[r];
    for (std::size_t i = 0; i < list.size();) {
      if (!is_comm(list[i].op)) {
        ++i;
        continue;
      }
      std::vector<std::size_t> g;
      for (; i < list.size() && is_comm(list[i].op); ++i) g.push_back(i);
      std::sort(g.begin(), g.end(), [&](std::size_t x, std::size_t y) {
        return key(static_cast<int>(r), list[x]) < key(static_cast<int>(r), list[y]);
      });
      out[r].push_back(std::move(g));
    }
  }
  return out;
}

void check_ordered(const Schedule& s) {
  const Layout L{s.stages, s.virtual_stages};
  const int K = s.stages;
  const auto groups = transfer_groups(s);
  // Per stage: the group each transfer belongs to, whether it is done, the
  // groups posted and not yet complete (the front one is on the wire), and
  // which groups have completed.
  std::vector<std::vector<int>> group_of(K);
  std::vector<std::vector<char>> done(K), group_done(K);
  std::vector<std::deque<int>> posted(K);
  std::vector<std::size_t> pc(K, 0);
  // Per stage: where its receive of (op, chunk, mb) is.
  std::vector<std::map<std::tuple<Op, int, int>, std::size_t>> recv_at(K);
  for (int r = 0; r < K; ++r) {
    const auto& list = s.actions[r];
    group_of[r].assign(list.size(), -1);
    done[r].assign(list.size(), 0);
    group_done[r].assign(groups[r].size(), 0);
    for (std::size_t g = 0; g < groups[r].size(); ++g)
      for (std::size_t i : groups[r][g]) group_of[r][i] = static_cast<int>(g);
    for (std::size_t i = 0; i < list.size(); ++i)
      if (list[i].op == Op::RECV_F || list[i].op == Op::RECV_B) recv_at[r][{list[i].op, list[i].chunk, list[i].mb}] = i;
  }
  // Whether the receive the compute action a of stage r needs has completed
  // (its whole group: that is when the stage learns of it).
  auto input_ready = [&](int r, const Action& a) {
    const int st = L.stage(r, a.chunk);
    Op need;
    if (a.op == Op::F && L.remote(st, -1))
      need = Op::RECV_F;
    else if ((a.op == Op::B || a.op == Op::I) && L.remote(st, +1))
      need = Op::RECV_B;
    else
      return true;
    auto it = recv_at[r].find({need, a.chunk, a.mb});
    return it == recv_at[r].end() || group_done[r][group_of[r][it->second]];
  };
  for (;;) {
    bool progress = false, finished = true;
    for (int r = 0; r < K; ++r) {
      const auto& list = s.actions[r];
      while (pc[r] < list.size()) {
        const Action& a = list[pc[r]];
        if (is_comm(a.op)) {
          const int g = group_of[r][pc[r]];
          posted[r].push_back(g);
          while (pc[r] < list.size() && is_comm(list[pc[r]].op)) ++pc[r];
        } else if (a.op == Op::STEP) {
          if (!posted[r].empty()) break;  // the sends of the step have not all left
          ++pc[r];
        } else {
          if (!input_ready(r, a)) break;
          ++pc[r];
        }
        progress = true;
      }
      finished = finished && pc[r] == list.size() && posted[r].empty();
    }
    if (finished) return;
    // Match the posted transfers: between two stages, the first unfinished
    // send of one's front group meets the first unfinished receive of the
    // other's front group, and they must be the same transfer.
    for (int r = 0; r < K; ++r) {
      if (posted[r].empty()) continue;
      const auto& mine = groups[r][posted[r].front()];
      for (std::size_t k = 0; k < mine.size(); ++k) {
        const std::size_t i = mine[k];
        const Action& a = s.actions[r][i];
        if (done[r][i] || !is_send(a.op)) continue;
        const Peer p = detail::transfer_peer(L, r, a);
        // Only the first unfinished send to this peer can match now.
        bool earlier = false;
        for (std::size_t x = 0; x < k && !earlier; ++x) {
          const std::size_t j = mine[x];
          earlier = !done[r][j] && is_send(s.actions[r][j].op) &&
                    detail::transfer_peer(L, r, s.actions[r][j]).actor == p.actor;
        }
        if (earlier || posted[p.actor].empty()) continue;
        for (std::size_t j : groups[p.actor][posted[p.actor].front()]) {
          const Action& q = s.actions[p.actor][j];
          if (done[p.actor][j] || is_send(q.op) || detail::transfer_peer(L, p.actor, q).actor != r) continue;
          if (!(q == p.match))
            throw ScheduleError(fmt::format(
                "{}: on a device group it would receive {} from stage {} ({}): NCCL takes the transfers between two "
                "stages in the order they are posted, whatever their kind",
                where(p.actor, j, q), to_string(a), r, where(r, i, a)));
          done[r][i] = done[p.actor][j] = 1;
          progress = true;
          break;
        }
      }
    }
    for (int r = 0; r < K; ++r) {
      if (posted[r].empty()) continue;
      const int g = posted[r].front();
      bool all = true;
      for (std::size_t i : groups[r][g]) all = all && done[r][i];
      if (all) {
        group_done[r][g] = 1;
        posted[r].pop_front();
        progress = true;
      }
    }
    if (progress) continue;
    // Nobody can move: name, for each stage that is stuck, what it waits on.
    std::string why;
    for (int r = 0; r < K; ++r) {
      std::string w;
      if (!posted[r].empty()) {
        for (std::size_t i : groups[r][posted[r].front()])
          if (!done[r][i] && w.empty()) w = fmt::format("{} waits for stage {}", where(r, i, s.actions[r][i]),
                                           detail::transfer_peer(L, r, s.actions[r][i]).actor);
      } else if (pc[r] < s.actions[r].size()) {
        w = fmt::format("{} waits for its input", where(r, pc[r], s.actions[r][pc[r]]));
      }
      if (!w.empty()) why += (why.empty() ? "" : "; ") + w;
    }
    throw ScheduleError(fmt::format("schedule can deadlock on a device group (each run of transfers is posted as one "
                                    "NCCL group that completes as a whole, one group at a time): {}",
                                    why));
  }
}

}  // namespace troupe::pipeline
