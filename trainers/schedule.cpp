// Pipeline schedules: names, the generators and the text form. The checker
// and its simulation are in schedule_check.cpp.
#include "trainers/schedule.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "trainers/detail/schedule_layout.hpp"

namespace troupe::pipeline {

using detail::has_mb;
using detail::Layout;

namespace {

constexpr std::array<std::pair<Op, const char*>, 10> kOps{{{Op::REDUCE_GRAD, "REDUCE_GRAD"},
                                                           {Op::SEND_F, "SEND_F"},
                                                           {Op::RECV_F, "RECV_F"},
                                                           {Op::SEND_B, "SEND_B"},
                                                           {Op::RECV_B, "RECV_B"},
                                                           {Op::STEP, "STEP"},
                                                           {Op::F, "F"},
                                                           {Op::B, "B"},
                                                           {Op::I, "I"},
                                                           {Op::W, "W"}}};

}  // namespace

const char* op_name(Op op) noexcept {
  for (const auto& [o, n] : kOps)
    if (o == op) return n;
  return "?";
}

std::string to_string(const Action& a) {
  std::string s = op_name(a.op);
  if (has_mb(a.op)) s += std::to_string(a.mb);
  if (a.chunk != 0) s += fmt::format("@{}", a.chunk);
  return s;
}

const char* kind_name(Kind k) noexcept { return enum_word(k).data(); }  // the words are literals

Kind parse_kind(std::string_view name) {
  if (auto k = parse_enum<Kind>(name)) return *k;
  throw ScheduleError(fmt::format("unknown schedule '{}': one of {}, or a schedule written out", name,
                                  fmt::join(EnumWords<Kind>::words, ", ")));
}

bool is_written(std::string_view schedule) noexcept {
  const auto b = schedule.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return false;
  const auto e = schedule.find_last_not_of(" \t\r\n");
  const auto words = schedule.substr(b, e - b + 1);
  return words.find_first_of(": \t\r\n") != std::string_view::npos;
}

// ---------------------------------------------------------------- generators

namespace {

struct Compute {
  Op op;
  int chunk, mb;
};

// The compute order of every actor, then the transfers each needs: a receive
// right before the instruction that uses it, a send right after the one that
// makes it (the checker's transfer model: a send never waits, a receive waits
// for its send).
Schedule with_transfers(const Layout& L, int M, const std::vector<std::vector<Compute>>& order, bool reduce_grad) {
  Schedule s;
  s.stages = L.K;
  s.virtual_stages = L.v;
  s.microbatches = M;
  s.actions.resize(L.K);
  for (int r = 0; r < L.K; ++r) {
    auto& out = s.actions[r];
    // The last backward instruction of each chunk, for REDUCE_GRAD right after it.
    std::vector<std::size_t> last_backward(L.v, 0);
    for (std::size_t i = 0; i < order[r].size(); ++i)
      if (order[r][i].op == Op::B || order[r][i].op == Op::W) last_backward[order[r][i].chunk] = i;
    for (std::size_t i = 0; i < order[r].size(); ++i) {
      const Compute& c = order[r][i];
      const int st = L.stage(r, c.chunk);
      if (c.op == Op::F && L.remote(st, -1)) out.push_back({Op::RECV_F, c.mb, c.chunk});
      if ((c.op == Op::B || c.op == Op::I) && L.remote(st, +1)) out.push_back({Op::RECV_B, c.mb, c.chunk});
      out.push_back({c.op, c.mb, c.chunk});
      if (c.op == Op::F && L.remote(st, +1)) out.push_back({Op::SEND_F, c.mb, c.chunk});
      if ((c.op == Op::B || c.op == Op::I) && L.remote(st, -1)) out.push_back({Op::SEND_B, c.mb, c.chunk});
      if (reduce_grad && last_backward[c.chunk] == i) out.push_back({Op::REDUCE_GRAD, -1, c.chunk});
    }
    out.push_back({Op::STEP, -1, 0});
  }
  return s;
}

// Megatron's order: micro-batches in groups of K (the last group may be
// smaller); within a group forwards go chunk 0 .. v-1 and backwards v-1 .. 0.
// A warm-up of forwards, then one forward and one backward at a time, then
// the remaining backwards. v = 1 is 1F1B.
// Interleaved with a last group of fewer than K micro-batches: Megatron's
// fixed alternation can wait in a cycle there, so the order is taken from a
// simulated run with Costs{}: each actor, when free, runs the next forward while
// fewer than Megatron's warm-up count are in flight and its input is there,
// else the next backward of the sequence if its gradient is there, else the
// next forward if its input is there and fewer than warm-up + 1 chunks are in
// flight, else waits. (Backwards first even in warm-up made it worse than 1F1B
// in 23 of 38 cases with K = 2-8, M not a multiple of K; this is never worse.) Every
// actor follows the same forward and backward sequences, so each channel's
// transfers arrive in the order they are sent.
template <class Warmup>
std::vector<std::vector<Compute>> interleaved_partial_order(const Layout& L, int M,
                                                           const std::vector<std::pair<int, int>>& fwd,
                                                           const std::vector<std::pair<int, int>>& bwd,
                                                           Warmup warmup) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  const Costs cost;
  const int S = L.S(), total = L.v * M;
  std::vector<std::vector<Compute>> order(L.K);
  std::vector<double> clock(L.K, 0);
  // act[s][mb]: when model stage s has mb's input; grad[s][mb]: its output gradient.
  std::vector<std::vector<double>> act(S, std::vector<double>(M, inf)), grad(S, std::vector<double>(M, inf));
  for (int mb = 0; mb < M; ++mb) act[0][mb] = 0;
  std::vector<int> fi(L.K, 0), bi(L.K, 0);
  std::vector<int> fwd_pos(static_cast<std::size_t>(total));  // (chunk, mb) -> its place in the forward sequence
  for (int k = 0; k < total; ++k) fwd_pos[static_cast<std::size_t>(fwd[k].first * M + fwd[k].second)] = k;
  auto b_at = [&](int r) -> double {  // when the next backward can start; inf: not known yet
    if (bi[r] >= total) return inf;
    const auto [c, mb] = bwd[bi[r]];
    const int st = L.stage(r, c);
    // Its forward must be done here (forwards run in sequence order).
    if (fwd_pos[static_cast<std::size_t>(c * M + mb)] >= fi[r]) return inf;
    return st == S - 1 ? clock[r] : grad[st][mb];
  };
  auto f_at = [&](int r) -> double {
    if (fi[r] >= total || fi[r] - bi[r] >= warmup(r) + 1) return inf;
    const auto [c, mb] = fwd[fi[r]];
    return act[L.stage(r, c)][mb];
  };
  for (long guard = 0; guard < 8L * L.K * total + 16; ++guard) {
    int r = -1;
    double t = inf;
    bool finished = true;
    for (int q = 0; q < L.K; ++q) {
      if (bi[q] == total) continue;
      finished = false;
      const double e = std::max(clock[q], std::min(b_at(q), f_at(q)));
      if (e < t) t = e, r = q;
    }
    if (finished) return order;
    if (r < 0) throw Error("interleaved generator: no stage can move (a bug in troupe)");
    clock[r] = t;
    // Warm-up first (forwards while fewer than warm-up are in flight), then backwards before forwards.
    const bool warming = fi[r] - bi[r] < warmup(r) && f_at(r) <= t;
    if (!warming && b_at(r) <= t) {
      const auto [c, mb] = bwd[bi[r]++];
      const int st = L.stage(r, c);
      clock[r] = t + cost.b;
      if (st > 0) grad[st - 1][mb] = clock[r];
      order[r].push_back({Op::B, c, mb});
    } else {
      const auto [c, mb] = fwd[fi[r]++];
      const int st = L.stage(r, c);
      clock[r] = t + cost.f;
      if (st + 1 < S) act[st + 1][mb] = clock[r];
      order[r].push_back({Op::F, c, mb});
    }
  }
  throw Error("interleaved generator: did not finish (a bug in troupe)");
}

std::vector<std::vector<Compute>> one_f_one_b_order(const Layout& L, int M) {
  std::vector<std::vector<Compute>> order(L.K);
  std::vector<std::pair<int, int>> fwd, bwd;  // (chunk, mb)
  for (int g = 0; g * L.K < M; ++g) {
    const int lo = g * L.K, hi = std::min(M, lo + L.K);
    for (int c = 0; c < L.v; ++c)
      for (int mb = lo; mb < hi; ++mb) fwd.emplace_back(c, mb);
    for (int c = L.v - 1; c >= 0; --c)
      for (int mb = lo; mb < hi; ++mb) bwd.emplace_back(c, mb);
  }
  const int total = L.v * M;
  auto warmup = [&](int r) { return std::min(total, L.v == 1 ? L.K - 1 - r : (L.K - r - 1) * 2 + (L.v - 1) * L.K); };
  if (L.v > 1 && M % L.K != 0) return interleaved_partial_order(L, M, fwd, bwd, warmup);
  for (int r = 0; r < L.K; ++r) {
    const int warm = warmup(r);
    auto& o = order[r];
    for (int i = 0; i < warm; ++i) o.push_back({Op::F, fwd[i].first, fwd[i].second});
    for (int i = 0; i < total - warm; ++i) {
      o.push_back({Op::F, fwd[warm + i].first, fwd[warm + i].second});
      o.push_back({Op::B, bwd[i].first, bwd[i].second});
    }
    for (int i = total - warm; i < total; ++i) o.push_back({Op::B, bwd[i].first, bwd[i].second});
  }
  return order;
}

// ZB-H1 (Qi et al., 2024): backward split into I and W. Built by simulating
// the pipeline with Costs{}: each stage, when free, runs a weight gradient if
// K - 1 of them are pending, else an input gradient if one is ready (the
// critical path), else a forward if fewer than K - r micro-batches are between
// F and I (1F1B's in-flight limit), else a pending weight gradient (which fills
// what would be bubble), else waits. Up to K - 1 deferred weight gradients is
// what reaches the textbook bubble (K-1)/(3M+K-1) for every K and M >= K
// (fewer leave bubble on the first stages); their inputs stay held meanwhile.
std::vector<std::vector<Compute>> zb_h1_order(int K, int M) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  const Costs cost;
  std::vector<std::vector<Compute>> order(K);
  std::vector<double> clock(K, 0);
  // act[r][mb]: when stage r has mb's input; grad[r][mb]: when it has mb's output gradient.
  std::vector<std::vector<double>> act(K, std::vector<double>(M, inf)), grad(K, std::vector<double>(M, inf));
  for (int mb = 0; mb < M; ++mb) act[0][mb] = 0;
  std::vector<int> next_f(K, 0), next_i(K, 0), next_w(K, 0);
  auto done = [&](int r) { return next_w[r] == M; };
  auto i_ok = [&](int r, double t) { return next_i[r] < next_f[r] && grad[r][next_i[r]] <= t; };
  auto f_ok = [&](int r, double t) {
    return next_f[r] < M && next_f[r] - next_i[r] < K - r && act[r][next_f[r]] <= t;
  };
  auto w_ok = [&](int r) { return next_w[r] < next_i[r]; };
  // When stage r can act next, as far as is known (a transfer not yet made: never).
  auto when = [&](int r) {
    const double t = clock[r];
    if (i_ok(r, t) || f_ok(r, t) || w_ok(r)) return t;
    double e = inf;
    if (next_i[r] < next_f[r]) e = std::min(e, grad[r][next_i[r]]);
    if (next_f[r] < M && next_f[r] - next_i[r] < K - r) e = std::min(e, act[r][next_f[r]]);
    return e;
  };
  for (long guard = 0; guard < 16L * K * M + 16; ++guard) {
    // The stage that can act first decides next: whatever it waits for that
    // is not known yet comes from a stage acting later, so arrives later.
    int r = -1;
    double t = inf;
    bool finished = true;
    for (int q = 0; q < K; ++q) {
      if (done(q)) continue;
      finished = false;
      const double e = when(q);
      if (e < t) t = e, r = q;
    }
    if (finished) return order;
    if (r < 0) throw Error("zb-h1 generator: no stage can move (a bug in troupe)");
    clock[r] = t;
    if (w_ok(r) && next_i[r] - next_w[r] > K - 1) {
      const int mb = next_w[r]++;
      clock[r] = t + cost.w;
      order[r].push_back({Op::W, 0, mb});
    } else if (i_ok(r, t)) {
      const int mb = next_i[r]++;
      clock[r] = t + cost.i;
      if (r > 0) grad[r - 1][mb] = clock[r];
      order[r].push_back({Op::I, 0, mb});
    } else if (f_ok(r, t)) {
      const int mb = next_f[r]++;
      clock[r] = t + cost.f;
      if (r + 1 < K) act[r + 1][mb] = clock[r];
      else grad[r][mb] = clock[r];  // the last stage's loss gradient is its own
      order[r].push_back({Op::F, 0, mb});
    } else {
      const int mb = next_w[r]++;
      clock[r] = t + cost.w;
      order[r].push_back({Op::W, 0, mb});
    }
  }
  throw Error("zb-h1 generator: did not finish (a bug in troupe)");
}

}  // namespace

Schedule generate(Kind kind, int stages, int microbatches, int virtual_stages, bool reduce_grad) {
  if (stages < 1) throw ScheduleError(fmt::format("a pipeline needs at least 1 stage, got {}", stages));
  if (microbatches < 1) throw ScheduleError(fmt::format("a pipeline needs at least 1 micro-batch, got {}", microbatches));
  if (virtual_stages < 1)
    throw ScheduleError(fmt::format("virtual_stages must be at least 1, got {}", virtual_stages));
  if (virtual_stages != 1 && kind != Kind::interleaved)
    throw ScheduleError(fmt::format("virtual_stages = {} needs the interleaved schedule ({} has one chunk per stage)",
                                    virtual_stages, kind_name(kind)));
  const Layout L{stages, virtual_stages};
  std::vector<std::vector<Compute>> order;
  switch (kind) {
    case Kind::gpipe:
      order.resize(stages);
      for (int r = 0; r < stages; ++r) {
        for (int mb = 0; mb < microbatches; ++mb) order[r].push_back({Op::F, 0, mb});
        for (int mb = 0; mb < microbatches; ++mb) order[r].push_back({Op::B, 0, mb});
      }
      break;
    case Kind::one_f_one_b:
    case Kind::interleaved: order = one_f_one_b_order(L, microbatches); break;
    case Kind::zb_h1: order = zb_h1_order(stages, microbatches); break;
  }
  return with_transfers(L, microbatches, order, reduce_grad);
}

// ---------------------------------------------------------------- text

std::string to_text(const Schedule& s) {
  std::string out;
  for (std::size_t r = 0; r < s.actions.size(); ++r) {
    out += fmt::format("stage {}:", r);
    for (const auto& a : s.actions[r]) out += " " + to_string(a);
    out += "\n";
  }
  return out;
}

namespace {

std::optional<Action> parse_action(std::string_view tok) {
  std::string up(tok);
  for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  for (const auto& [op, name] : kOps) {
    const std::string_view n(name);
    if (up.compare(0, n.size(), n) != 0) continue;
    std::string_view rest = std::string_view(up).substr(n.size());
    Action a{op, -1, 0};
    auto number = [&](std::string_view& r, int& v) {
      std::size_t k = 0;
      while (k < r.size() && std::isdigit(static_cast<unsigned char>(r[k]))) ++k;
      if (k == 0 || k > 6) return false;
      v = std::stoi(std::string(r.substr(0, k)));
      r.remove_prefix(k);
      return true;
    };
    if (has_mb(op) && !number(rest, a.mb)) return std::nullopt;
    if (!rest.empty() && rest[0] == '@') {
      rest.remove_prefix(1);
      if (!number(rest, a.chunk)) return std::nullopt;
    }
    if (!rest.empty()) return std::nullopt;
    return a;
  }
  return std::nullopt;
}

}  // namespace

Schedule parse(std::string_view text) {
  Schedule s;
  int line_no = 0;
  int max_mb = -1, max_chunk = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    auto trim = [](std::string_view v) {
      while (!v.empty() && std::isspace(static_cast<unsigned char>(v.front()))) v.remove_prefix(1);
      while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.remove_suffix(1);
      return v;
    };
    line = trim(line);
    if (line.empty()) continue;
    const int stage = static_cast<int>(s.actions.size());
    // An optional "stage R:" (or "R:") names the line's stage; it must be the next one.
    if (auto colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view head = trim(line.substr(0, colon));
      if (head.substr(0, 5) == "stage") head = trim(head.substr(5));
      const bool digits = !head.empty() && std::all_of(head.begin(), head.end(), [](char ch) {
        return std::isdigit(static_cast<unsigned char>(ch));
      });
      if (!digits || head.size() > 6 || std::stoi(std::string(head)) != stage)
        throw ScheduleError(fmt::format("schedule line {}: '{}:' where 'stage {}:' was expected (one line per stage, "
                                        "in order)",
                                        line_no, trim(line.substr(0, colon)), stage));
      line = trim(line.substr(colon + 1));
    }
    std::vector<Action> acts;
    while (!line.empty()) {
      auto sp = line.find_first_of(" \t,");
      std::string_view tok = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view{} : trim(line.substr(sp + 1));
      if (tok.empty()) continue;
      auto a = parse_action(tok);
      if (!a && (tok == "stage" || tok == "Stage"))
        throw ScheduleError(fmt::format("schedule line {}: a stage header is 'stage {}:', with a colon", line_no,
                                        stage));
      if (!a)
        throw ScheduleError(fmt::format(
            "schedule line {} (stage {}): '{}' is not an action (KIND then micro-batch, then @chunk if "
            "virtual stages: F3, SEND_B0@1; kinds F, B, I, W, SEND_F, RECV_F, SEND_B, RECV_B, REDUCE_GRAD, STEP)",
            line_no, stage, tok));
      max_mb = std::max(max_mb, a->mb);
      max_chunk = std::max(max_chunk, a->chunk);
      acts.push_back(*a);
    }
    s.actions.push_back(std::move(acts));
  }
  if (s.actions.empty()) throw ScheduleError("schedule: no stages (one line of actions per stage)");
  s.stages = static_cast<int>(s.actions.size());
  s.microbatches = std::max(1, max_mb + 1);
  s.virtual_stages = max_chunk + 1;
  return s;
}

double theory_bubble(Kind kind, int stages, int microbatches, int virtual_stages) {
  const double K = stages, M = microbatches, v = virtual_stages;
  switch (kind) {
    case Kind::gpipe:
    case Kind::one_f_one_b: return (K - 1) / (M + K - 1);
    case Kind::interleaved: return (K - 1) / (v * M + K - 1);
    case Kind::zb_h1: return (K - 1) / (3 * M + K - 1);
  }
  return 0;
}

}  // namespace troupe::pipeline
