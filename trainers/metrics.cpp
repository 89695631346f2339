#include "trainers/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

namespace troupe::train {

MetricsWriter::MetricsWriter(const std::string& path, const std::string& format, bool append)
    : path_(path), format_(format) {
  if (format_ != "jsonl" && format_ != "csv")
    throw UsageError(fmt::format("metrics format '{}': jsonl or csv", format_));
  const bool fresh = !append || !std::ifstream(path_).good();
  out_.open(path_, append ? std::ios::app : std::ios::trunc);
  if (!out_) throw Error(fmt::format("{}: cannot write the metrics: {}", path_, std::strerror(errno)));
  if (format_ == "csv" && fresh) out_ << "step,total_steps,epoch,loss,lr,samples_per_s,elapsed_s,test_accuracy,test_loss\n";
}

void MetricsWriter::write(const Progress& p) {
  if (format_ == "jsonl") {
    out_ << fmt::format(R"({{"step":{},"total_steps":{},"epoch":{},"loss":{:.6g},"lr":{:.6g},"samples_per_s":{:.1f},"elapsed_s":{:.3f})",
                        p.step, p.total_steps, p.epoch, p.loss, p.lr, p.samples_per_s, p.elapsed_s);
    if (p.bubble >= 0) out_ << fmt::format(R"(,"bubble":{:.4f})", p.bubble);
    // After a recovery the steps since the checkpoint are reported again: the count tells them apart.
    if (p.recoveries > 0) out_ << fmt::format(R"(,"recoveries":{})", p.recoveries);
    if (p.evaluated) out_ << fmt::format(R"(,"test_accuracy":{:.5f},"test_loss":{:.6g})", p.test_accuracy, p.test_loss);
    out_ << "}\n";
  } else {
    out_ << fmt::format("{},{},{},{:.6g},{:.6g},{:.1f},{:.3f},", p.step, p.total_steps, p.epoch, p.loss, p.lr,
                        p.samples_per_s, p.elapsed_s);
    if (p.evaluated) out_ << fmt::format("{:.5f},{:.6g}", p.test_accuracy, p.test_loss);
    else out_ << ",";
    out_ << "\n";
  }
  out_.flush();
  if (!out_) throw Error(fmt::format("{}: writing the metrics failed", path_));
}

std::vector<double> axis_ticks(double lo, double hi, int target, double min_step) {
  if (!(hi > lo)) {  // one value: a little room on both sides
    const double pad = min_step > 0 ? min_step : std::max(std::abs(lo) * 0.01, 1e-3);
    lo -= pad, hi += pad;
  }
  // Of the round steps near (hi - lo) / target, the one whose tick count is
  // closest to target (the smaller step on a tie).
  const double mag = std::pow(10.0, std::floor(std::log10((hi - lo) / target)));
  double step = 0;
  std::int64_t best = -1;
  for (double m : {1.0, 2.0, 5.0, 10.0, 20.0}) {
    const double s = std::max(m * mag, min_step);
    const auto n = static_cast<std::int64_t>(std::ceil(hi / s - 1e-9) - std::floor(lo / s + 1e-9)) + 1;
    if (best < 0 || std::llabs(n - target) < std::llabs(best - target)) best = n, step = s;
  }
  std::vector<double> t;
  const auto first = static_cast<std::int64_t>(std::floor(lo / step + 1e-9));
  for (std::int64_t i = 0; i < std::max<std::int64_t>(best, 2); ++i) t.push_back(static_cast<double>(first + i) * step);
  return t;
}

namespace {

std::string escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

// One panel: axes, ticks, a polyline (and dots for sparse series).
std::string panel(double x0, double y0, double w, double h, const std::vector<std::pair<double, double>>& pts,
                  const std::string& label, const std::string& colour, bool dots) {
  std::string s = fmt::format(R"(<g><rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#888"/>)", x0, y0, w, h);
  s += fmt::format(R"(<text x="{}" y="{}" font-size="13" font-family="sans-serif">{}</text>)", x0, y0 - 6, escape(label));
  if (pts.empty()) {
    s += fmt::format(R"(<text x="{}" y="{}" font-size="12" fill="#888" font-family="sans-serif">no data</text></g>)",
                     x0 + 10, y0 + h / 2);
    return s;
  }
  double xmin = pts.front().first, xmax = pts.front().first, ymin = pts.front().second, ymax = pts.front().second;
  for (auto [x, y] : pts) {
    xmin = std::min(xmin, x), xmax = std::max(xmax, x);
    ymin = std::min(ymin, y), ymax = std::max(ymax, y);
  }
  // The axes run from the first tick to the last, at round values.
  const auto xt = axis_ticks(xmin, xmax, 5, 1), yt = axis_ticks(ymin, ymax, 5);
  xmin = xt.front(), xmax = xt.back(), ymin = yt.front(), ymax = yt.back();
  auto X = [&](double x) { return x0 + (x - xmin) / (xmax - xmin) * w; };
  auto Y = [&](double y) { return y0 + h - (y - ymin) / (ymax - ymin) * h; };
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(ystep) + 1e-9)));
  for (double yv : yt)
    s += fmt::format(R"(<text x="{}" y="{}" font-size="10" text-anchor="end" font-family="sans-serif">{:.{}f}</text>)",
                     x0 - 4, Y(yv) + 3, yv, decimals);
  for (double xv : xt)
    s += fmt::format(R"(<text x="{}" y="{}" font-size="10" text-anchor="middle" font-family="sans-serif">{:.0f}</text>)",
                     X(xv), y0 + h + 14, xv);
  std::string poly;
  for (auto [x, y] : pts) poly += fmt::format("{:.1f},{:.1f} ", X(x), Y(y));
  s += fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>)", colour, poly);
  if (dots)
    for (auto [x, y] : pts) s += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"/>)", X(x), Y(y), colour);
  s += fmt::format(R"(<text x="{}" y="{}" font-size="10" text-anchor="middle" font-family="sans-serif">step</text></g>)",
                   x0 + w / 2, y0 + h + 28);
  return s;
}

}  // namespace

void write_svg_plot(const std::string& path, const std::string& title, const PlotSeries& s) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw Error(fmt::format("{}: cannot write the plot: {}", path, std::strerror(errno)));
  out << R"(<svg xmlns="http://www.w3.org/2000/svg" width="900" height="360" viewBox="0 0 900 360">)"
      << R"(<rect width="900" height="360" fill="white"/>)"
      << fmt::format(R"(<text x="450" y="22" font-size="15" text-anchor="middle" font-family="sans-serif">{}</text>)",
                     escape(title))
      << panel(70, 60, 340, 240, s.loss, "training loss", "#1f77b4", false)
      << panel(520, 60, 340, 240, s.accuracy, "test accuracy", "#d62728", true) << "</svg>\n";
  if (!out) throw Error(fmt::format("{}: writing the plot failed", path));
}

std::string progress_line(const Progress& p, int width) {
  const double f = p.total_steps ? static_cast<double>(p.step) / static_cast<double>(p.total_steps) : 0;
  const int filled = static_cast<int>(std::round(f * width));
  std::string bar = std::string(static_cast<std::size_t>(filled), '#') + std::string(static_cast<std::size_t>(width - filled), '.');
  std::string eta = "--";
  if (p.samples_per_s > 0 && p.step > 0 && p.elapsed_s > 0) {
    // From this run's pace: a resumed run did not spend elapsed_s on the steps before it.
    const double done = static_cast<double>(std::max<std::int64_t>(1, p.step - p.first_step));
    const double left = p.elapsed_s / done * static_cast<double>(p.total_steps - p.step);
    eta = left >= 60 ? fmt::format("{}m{:02}s", static_cast<int>(left) / 60, static_cast<int>(left) % 60)
                     : fmt::format("{:.0f}s", left);
  }
  std::string s = fmt::format("[{}] step {}/{} epoch {} loss {:.4f} {:.1f}k samples/s ETA {}", bar, p.step, p.total_steps,
                              p.epoch, p.loss, p.samples_per_s / 1000, eta);
  if (p.bubble >= 0) s += fmt::format(" bubble {:.0f}%", 100 * p.bubble);
  if (p.evaluated) s += fmt::format(" | test acc {:.4f}", p.test_accuracy);
  return s;
}

}  // namespace troupe::train
