#include "runtime/telemetry.hpp"

#include <algorithm>
#include <bit>
#include <string_view>

#include <fmt/format.h>

namespace troupe::telemetry {

namespace {
void slowest_first(std::vector<Straggler>& v) {
  std::sort(v.begin(), v.end(), [](const Straggler& a, const Straggler& b) {
    return a.slowdown != b.slowdown ? a.slowdown > b.slowdown : a.rank < b.rank;
  });
}
}  // namespace

std::vector<Straggler> find_stragglers(const std::vector<RankTiming>& ranks, double ratio, double min_gap_s) {
  // Ranks by their peers, each group sorted by compute: the median of a
  // rank's peers is read off its group with the rank left out (n log n:
  // a job of thousands of ranks is scored several times a second).
  std::map<std::string_view, std::vector<const RankTiming*>> groups;
  for (const auto& r : ranks) groups[r.peers].push_back(&r);
  std::vector<Straggler> out;
  for (auto& [peers, g] : groups) {
    const std::size_t n = g.size();
    if (n < 2) continue;  // a rank with no peer is never one
    std::sort(g.begin(), g.end(), [](const RankTiming* a, const RankTiming* b) { return a->compute_s < b->compute_s; });
    for (std::size_t i = 0; i < n; ++i) {
      // The k-th smallest of the others: g without g[i].
      const auto other = [&](std::size_t k) { return g[k < i ? k : k + 1]->compute_s; };
      const std::size_t m = n - 1;
      const double median = m % 2 ? other(m / 2) : (other(m / 2 - 1) + other(m / 2)) / 2;
      const auto& r = *g[i];
      if (median <= 0 || r.compute_s < median * ratio || r.compute_s - median < min_gap_s) continue;
      out.push_back({r.rank, r.label, r.compute_s, median, r.compute_s / median, 0});
    }
  }
  slowest_first(out);
  return out;
}

std::string describe(const Straggler& s) {
  return fmt::format("rank {}{}: {:.2f} ms/step, {:.1f}x its peers' {:.2f} ms{}", s.rank,
                     s.label.empty() ? "" : fmt::format(" ({})", s.label), s.compute_s * 1e3, s.slowdown,
                     s.peers_s * 1e3, s.since_step > 0 ? fmt::format(", since step {}", s.since_step) : "");
}

const std::vector<Straggler>& StragglerWatch::update(std::int64_t step, const std::vector<RankTiming>& ranks) {
  named_.clear();
  if (++reports_ == 1) return named_;  // warm-up
  std::map<std::uint32_t, Straggler> slow;
  for (auto& s : find_stragglers(ranks)) slow.emplace(s.rank, std::move(s));
  std::map<std::uint32_t, Rank> next;  // ranks this report has; the others are forgotten
  for (const auto& r : ranks) {
    auto it = ranks_.find(r.rank);
    Rank st = it != ranks_.end() ? it->second : Rank{};
    const auto s = slow.find(r.rank);
    const bool is_slow = s != slow.end();
    if (is_slow && (st.recent & 0b11) == 0 && !st.named) st.since = step;  // a new run of slow reports
    st.recent = ((st.recent << 1) | (is_slow ? 1u : 0u)) & 0b111;
    if (is_slow) {
      st.last = s->second;
      st.calm = 0;
    } else if (st.named && ++st.calm >= 3) {
      st = Rank{};  // kept up three times: no longer a straggler
    }
    if (!st.named && std::popcount(st.recent) >= 2) st.named = true;
    if (st.named) {
      named_.push_back(st.last);
      named_.back().since_step = st.since;
    }
    next[r.rank] = st;
  }
  ranks_ = std::move(next);
  slowest_first(named_);
  return named_;
}

double quantile_s(const std::vector<std::uint64_t>& counts, double q) {
  std::uint64_t total = 0;
  for (auto c : counts) total += c;
  if (total == 0) return 0;
  const auto want = static_cast<std::uint64_t>(static_cast<double>(total) * q + 0.999999);
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < counts.size(); ++b) {
    seen += counts[b];
    if (seen >= want) return static_cast<double>(std::uint64_t{2} << b) * 1e-6;
  }
  return static_cast<double>(std::uint64_t{2} << (counts.size() - 1)) * 1e-6;
}

}  // namespace troupe::telemetry
