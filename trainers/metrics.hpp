#pragma once
// What a training run leaves behind: metrics as JSON lines or CSV, one record
// per progress report (and per evaluation), and a plot of the training loss
// and the test accuracy as a self-contained SVG.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "trainers/run_loop.hpp"

namespace troupe::train {

class MetricsWriter {
 public:
  /// format: "jsonl" or "csv". Appends when `append` (a resumed run).
  MetricsWriter(const std::string& path, const std::string& format, bool append);
  void write(const Progress& p);
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_, format_;
  std::ofstream out_;
};

struct PlotSeries {
  std::vector<std::pair<double, double>> loss;      ///< (step, training loss)
  std::vector<std::pair<double, double>> accuracy;  ///< (step, test accuracy)
};

/// Tick values for an axis over [lo, hi]: about `target` of them at a step of
/// 1, 2 or 5 times a power of ten (at least `min_step`: 1 for steps), from
/// the multiple at or below lo to the one at or above hi. A single value
/// (lo == hi) gets ticks around it. Distinct and ascending.
std::vector<double> axis_ticks(double lo, double hi, int target = 5, double min_step = 0);

/// Writes the plot (two panels) to `path`; throws Error if it cannot.
void write_svg_plot(const std::string& path, const std::string& title, const PlotSeries& s);

/// "[#####.....]  step 120/4685  loss 0.4312  12.3k samples/s  ETA 1m02s"
std::string progress_line(const Progress& p, int width = 30);

}  // namespace troupe::train

namespace troupe::dp {  // the names before the training layer was shared
using train::axis_ticks;
using train::MetricsWriter;
using train::PlotSeries;
using train::progress_line;
using train::write_svg_plot;
}  // namespace troupe::dp
