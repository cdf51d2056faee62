#include "pipelines/inspect.h"

#include <cstdio>
#include <limits>
#include <sstream>

#include <torch/types.h>

#include "io/source.h"

namespace pretext::pipelines {
namespace {

constexpr int64_t kStripRows = 256;

struct BandStats {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0.0;
  int64_t count = 0;
};

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

}  // namespace

std::string inspect(const std::string& path, bool stats) {
  auto source = io::open(path);
  const auto& info = source->info();
  std::ostringstream out;
  out << "file     " << info.path << "\n"
      << "format   " << info.format << "\n"
      << "size     " << info.width << " x " << info.height << " pixels\n"
      << "bands    " << info.bands.size() << "\n";
  for (size_t b = 0; b < info.bands.size(); ++b) {
    const auto& band = info.bands[b];
    out << "  " << b + 1 << "  " << io::to_string(band.data_type);
    if (!band.description.empty()) out << "  \"" << band.description << "\"";
    if (band.nodata) out << "  nodata " << number(*band.nodata);
    out << "\n";
  }
  if (const auto georeference = source->georeference()) {
    const auto& geo = *georeference;
    const auto& t = geo.geo_transform;
    out << "crs      " << (geo.crs_name.empty() ? "(none)" : geo.crs_name) << "\n"
        << "origin   " << number(t[0]) << ", " << number(t[3]) << " (map units)\n"
        << "pixel    " << number(t[1]) << " x " << number(t[5]) << " (map units)\n";
  } else {
    out << "crs      (not georeferenced)\n";
  }
  if (!stats) return out.str();

  std::vector<BandStats> per_band(info.bands.size());
  for (int64_t row = 0; row < info.height; row += kStripRows) {
    const int64_t rows = std::min(kStripRows, info.height - row);
    const auto strip = source->read({0, row, info.width, rows}).pixels;
    for (size_t b = 0; b < per_band.size(); ++b) {
      auto values = strip[static_cast<int64_t>(b)].flatten().to(torch::kFloat64);
      if (info.bands[b].nodata) values = values.masked_select(values != *info.bands[b].nodata);
      if (values.numel() == 0) continue;
      auto& s = per_band[b];
      s.min = std::min(s.min, values.min().item<double>());
      s.max = std::max(s.max, values.max().item<double>());
      s.sum += values.sum().item<double>();
      s.count += values.numel();
    }
  }
  out << "band     min          mean         max          (decoded values";
  out << (std::any_of(info.bands.begin(), info.bands.end(),
                      [](const io::BandInfo& b) { return b.nodata.has_value(); })
              ? ", nodata excluded)\n"
              : ")\n");
  for (size_t b = 0; b < per_band.size(); ++b) {
    const auto& s = per_band[b];
    char line[128];
    if (s.count == 0)
      std::snprintf(line, sizeof line, "  %-6zu (every pixel is nodata)\n", b + 1);
    else
      std::snprintf(line, sizeof line, "  %-6zu %-12.6g %-12.6g %-12.6g\n", b + 1, s.min,
                    s.sum / s.count, s.max);
    out << line;
  }
  return out.str();
}

}  // namespace pretext::pipelines
