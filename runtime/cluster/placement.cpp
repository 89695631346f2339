#include "runtime/cluster/placement.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include <fmt/format.h>

#include "runtime/errors.hpp"

namespace troupe::cluster {

namespace {
constexpr double kEps = 1e-9;

double get(const ResourceMap& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? 0.0 : it->second;
}

std::string describe(const ResourceMap& req) {
  std::string out;
  for (const auto& [k, v] : req) {
    if (v <= 0) continue;
    if (!out.empty()) out += ", ";
    if (k == "memory")
      out += fmt::format("memory={:.2f} GiB", v / double(1ull << 30));
    else
      out += fmt::format("{}={}", k, v);
  }
  return out.empty() ? "nothing" : out;
}

std::string amount(const std::string& k, double v) {
  if (k == "memory") return fmt::format("{:.2f} GiB", v / double(1ull << 30));
  return fmt::format("{}", v);
}

// Positions of the devices a GPU request would take, or empty if it cannot.
std::vector<unsigned> pick_devices(const Slot& s, double g, int device) {
  std::vector<unsigned> out;
  if (g <= 0) return out;
  if (device >= 0) {
    for (unsigned p = 0; p < s.gpu_ids.size(); ++p)
      if (s.gpu_ids[p] == static_cast<unsigned>(device) && s.gpu_used[p] + std::min(g, 1.0) <= 1 + kEps)
        out.push_back(p);
    return out;
  }
  if (g < 1) {
    int best = -1;
    for (unsigned p = 0; p < s.gpu_used.size(); ++p)
      if (s.gpu_used[p] + g <= 1 + kEps && (best < 0 || s.gpu_used[p] > s.gpu_used[static_cast<unsigned>(best)]))
        best = static_cast<int>(p);
    if (best >= 0) out.push_back(static_cast<unsigned>(best));
    return out;
  }
  const auto want = static_cast<std::size_t>(std::llround(g));
  for (unsigned p = 0; p < s.gpu_used.size() && out.size() < want; ++p)
    if (s.gpu_used[p] <= kEps) out.push_back(p);
  if (out.size() < want) out.clear();
  return out;
}
}  // namespace

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::pack: return "PACK";
    case Strategy::spread: return "SPREAD";
    case Strategy::strict_pack: return "STRICT_PACK";
    case Strategy::strict_spread: return "STRICT_SPREAD";
  }
  return "?";
}

Slot Slot::node_slot(std::uint64_t id, std::string label, ResourceMap total) {
  Slot s;
  s.node = id;
  s.label = std::move(label);
  s.total = std::move(total);
  const auto gpus = static_cast<unsigned>(std::max(0.0, std::floor(get(s.total, "GPU") + kEps)));
  for (unsigned i = 0; i < gpus; ++i) {
    s.gpu_ids.push_back(i);
    s.gpu_used.push_back(0);
  }
  return s;
}

void validate_request(const ResourceMap& req, const std::string& what) {
  for (const auto& [k, v] : req) {
    if (!std::isfinite(v) || v < 0)
      throw UsageError(fmt::format("{} asks for {}={}: amounts must be non-negative numbers", what, k, v));
  }
  double g = get(req, "GPU");
  if (g > 1 && std::abs(g - std::round(g)) > kEps)
    throw UsageError(fmt::format("{} asks for GPU={}: above one GPU only whole numbers can be placed", what, g));
}

std::string shortfall(const Slot& s, const ResourceMap& req, int device) {
  if (!s.alive) return "node is dead";
  std::vector<std::string> why;
  for (const auto& [k, v] : req) {
    if (v <= 0 || k == "GPU") continue;
    const double total = get(s.total, k), free = total - get(s.used, k);
    if (v > free + kEps) {
      if (total <= 0)
        why.push_back(fmt::format("{}: wants {}, has none", k, amount(k, v)));
      else
        why.push_back(fmt::format("{}: wants {}, {} of {} free", k, amount(k, v), amount(k, free), amount(k, total)));
    }
  }
  const double g = get(req, "GPU");
  if (g > 0 && pick_devices(s, g, device).empty()) {
    if (s.gpu_ids.empty()) {
      why.push_back(fmt::format("GPU: wants {}, has none", g));
    } else if (device >= 0 && std::find(s.gpu_ids.begin(), s.gpu_ids.end(), static_cast<unsigned>(device)) ==
                                  s.gpu_ids.end()) {
      why.push_back(fmt::format("GPU: wants device {}, has devices 0-{}", device, s.gpu_ids.size() - 1));
    } else {
      std::string devs;
      for (unsigned p = 0; p < s.gpu_ids.size(); ++p)
        devs += fmt::format("{}{}: {:.2g} free", devs.empty() ? "" : ", ", s.gpu_ids[p], 1 - s.gpu_used[p]);
      why.push_back(fmt::format("GPU: wants {}{}, devices {}", g, device >= 0 ? fmt::format(" on device {}", device) : "",
                                devs));
    }
  }
  std::string out;
  for (auto& w : why) out += (out.empty() ? "" : "; ") + w;
  return out;
}

Grant take(Slot& s, const ResourceMap& req, int device) {
  Grant g;
  g.node = s.node;
  const double gpu = get(req, "GPU");
  if (gpu > 0) {
    g.device_slots = pick_devices(s, gpu, device);
    if (g.device_slots.empty()) throw Error("placement: take() of a GPU request that does not fit");
    g.gpu_share = std::min(gpu, 1.0);
    for (auto p : g.device_slots) {
      s.gpu_used[p] += g.gpu_share;
      g.devices.push_back(s.gpu_ids[p]);
    }
  }
  for (const auto& [k, v] : req) {
    if (v <= 0) continue;
    s.used[k] += v;
    g.resources[k] = v;
  }
  ++s.actors;
  return g;
}

void give_back(Slot& s, const Grant& g) {
  for (const auto& [k, v] : g.resources) {
    auto it = s.used.find(k);
    if (it == s.used.end()) continue;
    it->second -= v;
    if (it->second < kEps) s.used.erase(it);
  }
  for (auto p : g.device_slots)
    if (p < s.gpu_used.size()) s.gpu_used[p] = std::max(0.0, s.gpu_used[p] - g.gpu_share);
  if (s.actors) --s.actors;
}

namespace {
[[noreturn]] void infeasible(const std::vector<Slot>& slots, const ResourceMap& req, int device,
                             const std::string& head) {
  std::string msg = head;
  bool any = false;
  for (const auto& s : slots) {
    if (!s.alive) continue;
    any = true;
    msg += fmt::format("\n  {}: {}", s.label, shortfall(s, req, device));
  }
  if (!any) msg += "\n  (no alive node in the cluster)";
  throw Infeasible(msg);
}
}  // namespace

std::size_t choose(const std::vector<Slot>& slots, const ResourceMap& req, int device, std::uint64_t prefer,
                   const std::string& what) {
  validate_request(req, what);
  std::size_t best = slots.size();
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (!slots[i].alive || !shortfall(slots[i], req, device).empty()) continue;
    if (prefer && slots[i].node == prefer) return i;
    if (best == slots.size() || slots[i].actors < slots[best].actors) best = i;
  }
  if (best == slots.size())
    infeasible(slots, req, device,
               fmt::format("infeasible: {} asks for {}{} and no node can host it:", what, describe(req),
                           device >= 0 ? fmt::format(" on device {}", device) : ""));
  return best;
}

std::vector<std::size_t> place_bundles(const std::vector<Slot>& slots, const std::vector<ResourceMap>& bundles,
                                       Strategy strategy) {
  if (bundles.empty()) throw UsageError("a placement group needs at least one bundle");
  for (std::size_t b = 0; b < bundles.size(); ++b) validate_request(bundles[b], fmt::format("bundle {}", b));
  const std::size_t n = bundles.size();
  std::vector<std::size_t> out(n, slots.size());

  auto all_on = [&](std::size_t i) -> std::string {
    Slot s = slots[i];
    for (std::size_t b = 0; b < n; ++b) {
      auto why = shortfall(s, bundles[b], -1);
      if (!why.empty()) return fmt::format("bundle {} ({}) does not fit: {}", b, describe(bundles[b]), why);
      take(s, bundles[b], -1);
    }
    return {};
  };

  if (strategy == Strategy::strict_pack || strategy == Strategy::pack) {
    std::vector<std::string> why(slots.size());
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (!slots[i].alive) continue;
      why[i] = all_on(i);
      if (why[i].empty()) {
        std::fill(out.begin(), out.end(), i);
        return out;
      }
    }
    if (strategy == Strategy::strict_pack) {
      std::string msg = fmt::format("infeasible: STRICT_PACK placement group of {} bundle(s) needs one node for all:", n);
      for (std::size_t i = 0; i < slots.size(); ++i)
        if (slots[i].alive) msg += fmt::format("\n  {}: {}", slots[i].label, why[i]);
      throw Infeasible(msg);
    }
  }

  std::vector<Slot> work = slots;
  std::vector<std::size_t> per(slots.size(), 0);  // bundles of this group per slot

  if (strategy == Strategy::strict_spread) {
    std::size_t alive = 0;
    for (const auto& s : slots) alive += s.alive;
    if (alive < n)
      throw Infeasible(fmt::format("infeasible: STRICT_SPREAD placement group of {} bundles needs {} distinct nodes; "
                                   "the cluster has {} alive",
                                   n, n, alive));
    // Backtracking over distinct nodes (groups are small).
    std::function<bool(std::size_t)> assign = [&](std::size_t b) -> bool {
      if (b == n) return true;
      for (std::size_t i = 0; i < work.size(); ++i) {
        if (per[i] || !work[i].alive || !shortfall(work[i], bundles[b], -1).empty()) continue;
        Grant g = take(work[i], bundles[b], -1);
        per[i] = 1;
        out[b] = i;
        if (assign(b + 1)) return true;
        give_back(work[i], g);
        per[i] = 0;
      }
      return false;
    };
    if (assign(0)) return out;
    std::string msg = fmt::format("infeasible: STRICT_SPREAD placement group needs each of {} bundles on its own node:", n);
    for (std::size_t b = 0; b < n; ++b) {
      std::size_t fits = 0;
      for (const auto& s : slots) fits += s.alive && shortfall(s, bundles[b], -1).empty();
      msg += fmt::format("\n  bundle {} ({}) fits on {} node(s)", b, describe(bundles[b]), fits);
    }
    throw Infeasible(msg);
  }

  // PACK (not on one node) and SPREAD: greedy, bundle by bundle.
  for (std::size_t b = 0; b < n; ++b) {
    std::size_t best = work.size();
    for (std::size_t i = 0; i < work.size(); ++i) {
      if (!work[i].alive || !shortfall(work[i], bundles[b], -1).empty()) continue;
      if (best == work.size()) {
        best = i;
        continue;
      }
      if (strategy == Strategy::pack ? per[i] > per[best] : per[i] < per[best]) best = i;
    }
    if (best == work.size())
      infeasible(work, bundles[b], -1,
                 fmt::format("infeasible: {} placement group: bundle {} ({}) fits on no node{}:", strategy_name(strategy),
                             b, describe(bundles[b]), b ? " beside the bundles before it" : ""));
    take(work[best], bundles[b], -1);
    ++per[best];
    out[b] = best;
  }
  return out;
}

}  // namespace troupe::cluster
