#pragma once

#include <limits>
#include <string>
#include <vector>

namespace pretext::pipelines {

/// One line of a plot; points with a non-finite y are left out.
struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct PlotOptions {
  std::string title, x_label, y_label;
  bool log_x = false;  ///< base-10 axis, for learning rates
  /// A point to ring (the chosen setting); NaN for none.
  double mark_x = std::numeric_limits<double>::quiet_NaN();
  double mark_y = std::numeric_limits<double>::quiet_NaN();
};

/// `text` safe inside XML / HTML text and attribute values (<, >, &, " as entities).
std::string xml_escape(const std::string& text);

/// A self-contained SVG line chart (axes, ticks, legend), for run directories and reports.
std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& options);

}  // namespace pretext::pipelines
