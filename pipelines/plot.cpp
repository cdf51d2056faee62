#include "pipelines/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace pretext::pipelines {
namespace {

constexpr double kWidth = 560, kHeight = 340;
constexpr double kLeft = 64, kRight = 150, kTop = 34, kBottom = 48;  // margins, pixels
constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                    "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.4g", value);
  return buffer;
}

struct Axis {
  double low = 0, high = 1;
  bool log = false;
  double pixels_low = 0, pixels_high = 1;

  double value(double v) const { return log ? std::log10(v) : v; }
  double to_pixel(double v) const {
    const double t = (value(v) - low) / (high - low);
    return pixels_low + t * (pixels_high - pixels_low);
  }
  /// About five round tick values inside the range.
  std::vector<double> ticks() const {
    std::vector<double> out;
    if (log) {
      for (double e = std::ceil(low - 1e-9); e <= high + 1e-9; e += 1)
        out.push_back(std::pow(10, e));
      return out;
    }
    const double raw = (high - low) / 5;
    const double magnitude = std::pow(10, std::floor(std::log10(raw)));
    double step = magnitude;
    for (const double m : {1.0, 2.0, 5.0, 10.0})
      if (m * magnitude >= raw) {
        step = m * magnitude;
        break;
      }
    for (double t = std::ceil(low / step) * step; t <= high + 1e-9 * step; t += step)
      out.push_back(std::abs(t) < 1e-12 * step ? 0.0 : t);
    return out;
  }
};

Axis fit(const std::vector<double>& values, bool log, double pixels_low, double pixels_high) {
  Axis axis{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), log,
            pixels_low, pixels_high};
  for (const double v : values) {
    if (!std::isfinite(v) || (log && v <= 0)) continue;
    axis.low = std::min(axis.low, axis.value(v));
    axis.high = std::max(axis.high, axis.value(v));
  }
  if (!std::isfinite(axis.low)) axis.low = 0, axis.high = 1;
  if (axis.high - axis.low < 1e-12) axis.low -= 0.5, axis.high += 0.5;
  if (!log) {
    const double pad = 0.05 * (axis.high - axis.low);
    axis.low -= pad;
    axis.high += pad;
  }
  return axis;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& options) {
  std::vector<double> xs, ys;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i])) {
        xs.push_back(s.x[i]);
        ys.push_back(s.y[i]);
      }
  const Axis x = fit(xs, options.log_x, kLeft, kWidth - kRight);
  const Axis y = fit(ys, false, kHeight - kBottom, kTop);
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" viewBox=\"0 0 " << kWidth << ' ' << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << kWidth / 2 << "\" y=\"18\" text-anchor=\"middle\" font-size=\"13\">"
      << xml_escape(options.title) << "</text>\n";
  for (const double t : x.ticks()) {
    const double px = x.to_pixel(t);
    svg << "<line x1=\"" << px << "\" y1=\"" << kTop << "\" x2=\"" << px << "\" y2=\""
        << kHeight - kBottom << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << px << "\" y=\""
        << kHeight - kBottom + 14 << "\" text-anchor=\"middle\">" << number(t) << "</text>\n";
  }
  for (const double t : y.ticks()) {
    const double py = y.to_pixel(t);
    svg << "<line x1=\"" << kLeft << "\" y1=\"" << py << "\" x2=\"" << kWidth - kRight << "\" y2=\""
        << py << "\" stroke=\"#e5e5e5\"/>\n<text x=\"" << kLeft - 6 << "\" y=\"" << py + 4
        << "\" text-anchor=\"end\">" << number(t) << "</text>\n";
  }
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << kWidth - kLeft - kRight
      << "\" height=\"" << kHeight - kTop - kBottom << "\" fill=\"none\" stroke=\"#444\"/>\n"
      << "<text x=\"" << (kLeft + kWidth - kRight) / 2 << "\" y=\"" << kHeight - 10
      << "\" text-anchor=\"middle\">" << xml_escape(options.x_label) << "</text>\n"
      << "<text transform=\"translate(16 " << (kTop + kHeight - kBottom) / 2
      << ") rotate(-90)\" text-anchor=\"middle\">" << xml_escape(options.y_label) << "</text>\n";
  for (size_t s = 0; s < series.size(); ++s) {
    const char* colour = kColours[s % (sizeof kColours / sizeof *kColours)];
    svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < series[s].x.size() && i < series[s].y.size(); ++i)
      if (std::isfinite(series[s].y[i]) && (!options.log_x || series[s].x[i] > 0))
        svg << x.to_pixel(series[s].x[i]) << ',' << y.to_pixel(series[s].y[i]) << ' ';
    svg << "\"/>\n";
    if (series[s].x.size() <= 40)
      for (size_t i = 0; i < series[s].x.size() && i < series[s].y.size(); ++i)
        if (std::isfinite(series[s].y[i]))
          svg << "<circle cx=\"" << x.to_pixel(series[s].x[i]) << "\" cy=\""
              << y.to_pixel(series[s].y[i]) << "\" r=\"2.5\" fill=\"" << colour << "\"/>\n";
    const double ly = kTop + 8 + 16 * static_cast<double>(s);
    svg << "<line x1=\"" << kWidth - kRight + 10 << "\" y1=\"" << ly << "\" x2=\""
        << kWidth - kRight + 28 << "\" y2=\"" << ly << "\" stroke=\"" << colour
        << "\" stroke-width=\"2\"/>\n<text x=\"" << kWidth - kRight + 32 << "\" y=\"" << ly + 4
        << "\">" << xml_escape(series[s].name) << "</text>\n";
  }
  if (std::isfinite(options.mark_x) && std::isfinite(options.mark_y))
    svg << "<circle cx=\"" << x.to_pixel(options.mark_x) << "\" cy=\"" << y.to_pixel(options.mark_y)
        << "\" r=\"7\" fill=\"none\" stroke=\"black\"/>\n";
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace pretext::pipelines
