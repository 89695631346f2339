// Pipeline schedules: the checker. Static checks of each stage's list, the
// channels' order, then a simulation that finds receive cycles and measures
// the bubble and memory.
#include "trainers/schedule.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include <fmt/format.h>

#include "trainers/detail/schedule_layout.hpp"

namespace troupe::pipeline {

using detail::has_mb;
using detail::is_comm;
using detail::Layout;
using detail::Place;

namespace {

std::string where(int stage, std::size_t index, const Action& a) {
  return fmt::format("stage {}, action {} ({})", stage, index, to_string(a));
}

// Static checks: counts and the order of each stage's own instructions.
void check_lists(const Schedule& s, const Layout& L) {
  const int M = s.microbatches, v = s.virtual_stages;
  if (static_cast<int>(s.actions.size()) != s.stages)
    throw ScheduleError(fmt::format("schedule: {} stages declared, {} instruction lists", s.stages, s.actions.size()));
  bool any_reduce = false;
  for (const auto& list : s.actions)
    for (const auto& a : list) any_reduce = any_reduce || a.op == Op::REDUCE_GRAD;
  for (int r = 0; r < s.stages; ++r) {
    const auto& list = s.actions[r];
    // Position of each instruction per (op, chunk, mb); -1: absent.
    std::map<std::tuple<Op, int, int>, std::size_t> at;
    std::vector<int> reduce_at(v, -1);
    for (std::size_t i = 0; i < list.size(); ++i) {
      const Action& a = list[i];
      if (a.chunk < 0 || a.chunk >= v)
        throw ScheduleError(fmt::format("{}: chunk {} of {}", where(r, i, a), a.chunk, v));
      if (has_mb(a.op) && (a.mb < 0 || a.mb >= M))
        throw ScheduleError(fmt::format("{}: micro-batch {} of {}", where(r, i, a), a.mb, M));
      if (a.op == Op::STEP) {
        if (i + 1 != list.size())
          throw ScheduleError(fmt::format("{}: STEP must be the stage's last action", where(r, i, a)));
        continue;
      }
      if (a.op == Op::REDUCE_GRAD) {
        if (reduce_at[a.chunk] >= 0)
          throw ScheduleError(fmt::format("{}: a second REDUCE_GRAD for chunk {} (the first is action {})",
                                          where(r, i, a), a.chunk, reduce_at[a.chunk]));
        reduce_at[a.chunk] = static_cast<int>(i);
        continue;
      }
      const int st = L.stage(r, a.chunk);
      if (is_comm(a.op)) {
        const int d = (a.op == Op::SEND_F || a.op == Op::RECV_B) ? +1 : -1;
        if (!L.remote(st, d)) {
          const char* why = !L.exists(st, d) ? (d > 0 ? "the last model stage has no next stage"
                                                      : "the first model stage has no previous stage")
                                             : "its neighbour is on this same stage actor (the transfer is local)";
          throw ScheduleError(fmt::format("{}: nothing to transfer: {}", where(r, i, a), why));
        }
      }
      auto [it, fresh] = at.emplace(std::tuple{a.op, a.chunk, a.mb}, i);
      if (!fresh)
        throw ScheduleError(fmt::format("{}: micro-batch {} already had {} at action {}", where(r, i, a), a.mb,
                                        op_name(a.op), it->second));
    }
    if (list.empty() || list.back().op != Op::STEP)
      throw ScheduleError(fmt::format("stage {}: the last action must be STEP (the optimizer step)", r));
    auto pos = [&](Op op, int c, int mb) -> long {
      auto it = at.find({op, c, mb});
      return it == at.end() ? -1 : static_cast<long>(it->second);
    };
    for (int c = 0; c < v; ++c) {
      const int st = L.stage(r, c);
      const std::string chunk_s = v > 1 ? fmt::format(" of chunk {}", c) : "";
      const std::string tag = v > 1 ? fmt::format("@{}", c) : "";
      long last_backward = -1;
      for (int mb = 0; mb < M; ++mb) {
        const long f = pos(Op::F, c, mb), b = pos(Op::B, c, mb), in = pos(Op::I, c, mb), w = pos(Op::W, c, mb);
        if (f < 0)
          throw ScheduleError(fmt::format("stage {}: micro-batch {}{} never goes forward (no F{}{})", r, mb, chunk_s,
                                          mb, tag));
        if (b >= 0 && (in >= 0 || w >= 0))
          throw ScheduleError(fmt::format("stage {}: micro-batch {}{} has both B{} and the split I/W", r, mb,
                                          chunk_s, mb));
        if (b < 0 && (in < 0 || w < 0))
          throw ScheduleError(fmt::format("stage {}: micro-batch {}{} never goes backward (no B{}{}, or I{}{} and "
                                          "W{}{})",
                                          r, mb, chunk_s, mb, tag, mb, tag, mb, tag));
        const long bi = b >= 0 ? b : in;  // the instruction that makes the input gradient
        const Action& bi_a = s.actions[r][bi];
        if (bi < f)
          throw ScheduleError(fmt::format("{}: backward before its forward (F{}{} is action {})", where(r, bi, bi_a),
                                          mb, tag, f));
        if (w >= 0 && w < in)
          throw ScheduleError(fmt::format("{}: weight gradient before the input gradient (I{}{} is action {})",
                                          where(r, w, s.actions[r][w]), mb, tag, in));
        last_backward = std::max(last_backward, b >= 0 ? b : w);
        // Transfers: each one needed exactly once, on the right side of its compute.
        struct Need {
          Op op;
          bool needed;
          long compute;
          bool before;  // the transfer comes before the compute (a receive) or after (a send)
          const char* what;
        };
        const Need needs[] = {
            {Op::RECV_F, L.remote(st, -1), f, true, "its input"},
            {Op::SEND_F, L.remote(st, +1), f, false, "its activation"},
            {Op::RECV_B, L.remote(st, +1), bi, true, "its output gradient"},
            {Op::SEND_B, L.remote(st, -1), bi, false, "its input gradient"},
        };
        for (const Need& n : needs) {
          if (!n.needed) continue;
          const long t = pos(n.op, c, mb);
          const Action& comp = s.actions[r][n.compute];
          if (t < 0)
            throw ScheduleError(fmt::format("{}: no {}{}{} {} {}", where(r, n.compute, comp), op_name(n.op), mb, tag,
                                            n.before ? "brings" : "sends", n.what));
          if (n.before && t > n.compute)
            throw ScheduleError(fmt::format("{}: {} arrives only later, at action {} ({}{}{})",
                                            where(r, n.compute, comp), n.what, t, op_name(n.op), mb, tag));
          if (!n.before && t < n.compute)
            throw ScheduleError(fmt::format("{}: sends {} before it is made (action {}, {})",
                                            where(r, t, s.actions[r][t]), n.what, n.compute, to_string(comp)));
        }
        // Neighbours on this same actor: their instruction must come first.
        if (L.exists(st, -1) && !L.remote(st, -1)) {
          const long prev = pos(Op::F, L.place(st - 1).chunk, mb);
          if (prev > f)
            throw ScheduleError(fmt::format("{}: the previous chunk's forward F{}@{} comes later, at action {}",
                                            where(r, f, s.actions[r][f]), mb, L.place(st - 1).chunk, prev));
        }
        if (L.exists(st, +1) && !L.remote(st, +1)) {
          const int nc = L.place(st + 1).chunk;
          const long next = std::max(pos(Op::B, nc, mb), pos(Op::I, nc, mb));
          if (next > bi)
            throw ScheduleError(fmt::format("{}: the next chunk's backward of micro-batch {} comes later, at action {}",
                                            where(r, bi, bi_a), mb, next));
        }
      }
      if (any_reduce && reduce_at[c] < 0)
        throw ScheduleError(fmt::format("stage {}: no REDUCE_GRAD{} (other stages reduce gradients across replicas; "
                                        "every chunk must)",
                                        r, tag));
      if (reduce_at[c] >= 0 && reduce_at[c] < last_backward)
        throw ScheduleError(fmt::format("{}: gradients reduced before the chunk's last backward (action {})",
                                        where(r, reduce_at[c], s.actions[r][reduce_at[c]]), last_backward));
    }
  }
}

// The matching transfer of stage r's transfer a: (stage, op, chunk, micro-batch).
std::tuple<int, Op, int, int> transfer_key(const Layout& L, int r, const Action& a) {
  const auto p = detail::transfer_peer(L, r, a);
  return {p.actor, p.match.op, p.match.chunk, p.match.mb};
}

// Transfers between two stage actors go in order, one channel per direction
// and kind (as NCCL matches sends and receives on a communicator in order): the
// receiver takes them in the order the sender sends them.
void check_channels(const Schedule& s, const Layout& L) {
  // (from, to, kind F or B) -> the (chunk, micro-batch) sequence each side has.
  std::map<std::tuple<int, int, bool>, std::vector<std::pair<int, int>>> sent, received;
  std::map<std::tuple<int, int, bool>, std::vector<std::size_t>> received_at;
  for (int r = 0; r < s.stages; ++r)
    for (std::size_t i = 0; i < s.actions[r].size(); ++i) {
      const Action& a = s.actions[r][i];
      if (!is_comm(a.op)) continue;
      const int peer = detail::transfer_peer(L, r, a).actor;
      const bool fwd = a.op == Op::SEND_F || a.op == Op::RECV_F;
      if (a.op == Op::SEND_F || a.op == Op::SEND_B) {
        sent[{r, peer, fwd}].emplace_back(a.chunk, a.mb);
      } else {
        received[{peer, r, fwd}].emplace_back(L.place(L.stage(r, a.chunk) + (fwd ? -1 : 1)).chunk, a.mb);
        received_at[{peer, r, fwd}].push_back(i);
      }
    }
  for (const auto& [key, in] : received) {
    const auto& out = sent[key];
    const auto [from, to, fwd] = key;
    for (std::size_t k = 0; k < in.size() && k < out.size(); ++k) {
      if (in[k] == out[k]) continue;
      const std::size_t i = received_at[key][k];
      const auto tag = [&](std::pair<int, int> cm) {
        return fmt::format("{}{}{}", fwd ? "F" : "B", cm.second, L.v > 1 ? fmt::format(" of chunk {}", cm.first) : "");
      };
      throw ScheduleError(fmt::format("{}: stage {} sends {} to this stage first; transfers between two stages are "
                                      "taken in the order they are sent",
                                      where(to, i, s.actions[to][i]), from, tag(out[k])));
    }
  }
}

// Runs the instruction lists: compute takes its cost, a send is posted and
// the stage goes on (the transport holds the data until it is received), a
// receive waits until its send is posted. Returns what blocks every stage
// when none can move (a wait cycle), or nothing once all are done.
std::optional<std::string> simulate(const Schedule& s, const Layout& L, const Costs& costs, Report& rep) {
  const int K = s.stages;
  rep = Report{};
  rep.peak_activations.assign(K, 0);
  std::vector<std::size_t> pc(K, 0);
  std::vector<double> clock(K, 0), busy(K, 0);
  std::map<std::tuple<int, Op, int, int>, double> posted;  // sends: (stage, op, chunk, mb) -> when
  std::vector<int> live(K, 0);
  for (;;) {
    bool progress = false, all_done = true;
    for (int r = 0; r < K; ++r) {
      const auto& list = s.actions[r];
      while (pc[r] < list.size()) {
        const Action& a = list[pc[r]];
        if (a.op == Op::SEND_F || a.op == Op::SEND_B) {
          posted[{r, a.op, a.chunk, a.mb}] = clock[r];
        } else if (a.op == Op::RECV_F || a.op == Op::RECV_B) {
          auto it = posted.find(transfer_key(L, r, a));
          if (it == posted.end()) break;  // waits for the send
          clock[r] = std::max(clock[r], it->second);
        } else {
          double d = 0;
          switch (a.op) {
            case Op::F: d = costs.f, ++live[r]; break;
            case Op::B: d = costs.b; break;
            case Op::I: d = costs.i; break;
            case Op::W: d = costs.w; break;
            default: break;
          }
          rep.peak_activations[r] = std::max(rep.peak_activations[r], live[r]);
          if (a.op == Op::B || a.op == Op::W) --live[r];
          if (d > 0) rep.timeline.push_back({r, a, clock[r], clock[r] + d});
          clock[r] += d;
          busy[r] += d;
        }
        ++pc[r];
        progress = true;
      }
      all_done = all_done && pc[r] == list.size();
    }
    if (all_done) break;
    if (progress) continue;
    // Nobody can move: follow who waits for whom from the first blocked stage to a cycle.
    int r = 0;
    while (pc[r] == s.actions[r].size()) ++r;
    std::vector<int> seen;
    std::string chain;
    while (std::find(seen.begin(), seen.end(), r) == seen.end()) {
      seen.push_back(r);
      const Action& a = s.actions[r][pc[r]];
      const int peer = detail::transfer_peer(L, r, a).actor;
      chain += fmt::format("{}{} waits for stage {}", chain.empty() ? "" : "; ", where(r, pc[r], a), peer);
      if (pc[peer] == s.actions[peer].size()) {
        chain += ", which has finished";
        break;
      }
      r = peer;
    }
    return fmt::format("schedule can deadlock: {}", chain);
  }
  rep.makespan = *std::max_element(clock.begin(), clock.end());
  double total_busy = 0;
  for (double b : busy) total_busy += b;
  rep.bubble = rep.makespan > 0 ? 1.0 - total_busy / (K * rep.makespan) : 0.0;
  std::stable_sort(rep.timeline.begin(), rep.timeline.end(),
                   [](const Span& a, const Span& b) { return a.start < b.start; });
  return std::nullopt;
}

}  // namespace

Report check(const Schedule& s, const Costs& costs) {
  if (s.stages < 1 || s.microbatches < 1 || s.virtual_stages < 1)
    throw ScheduleError(fmt::format("schedule: {} stages, {} micro-batches, {} virtual stages: each must be at least 1",
                                    s.stages, s.microbatches, s.virtual_stages));
  const Layout L{s.stages, s.virtual_stages};
  check_lists(s, L);
  check_channels(s, L);
  Report rep;
  if (auto stuck = simulate(s, L, costs, rep)) throw ScheduleError(*stuck);
  return rep;
}

}  // namespace troupe::pipeline
