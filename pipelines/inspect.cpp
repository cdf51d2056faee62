#include "pipelines/inspect.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>

#include <torch/types.h>

#include "base/errors.h"
#include "domains/tissue.h"
#include "io/catalog.h"
#include "io/dicom.h"
#include "io/gdal_raster.h"
#include "io/slide.h"
#include "io/source.h"
#include "io/volume.h"

namespace pretext::pipelines {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kStripRows = 256;

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

/// Min, mean and max over tensors seen one after another (strips, slices).
struct Running {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0.0;
  int64_t count = 0;
  void add(const torch::Tensor& values) {
    if (values.numel() == 0) return;
    const auto v = values.to(torch::kFloat64);
    min = std::min(min, v.min().item<double>());
    max = std::max(max, v.max().item<double>());
    sum += v.sum().item<double>();
    count += v.numel();
  }
  std::string line() const {
    return "min " + number(min) + "  mean " + number(sum / std::max<int64_t>(count, 1)) + "  max " +
           number(max);
  }
};

std::string join(const std::vector<std::string>& parts, const std::string& separator) {
  std::string text;
  for (const auto& part : parts) text += (text.empty() ? "" : separator) + part;
  return text;
}

std::string inspect_dicom(const std::string& path, bool stats) {
  std::vector<io::CatalogItem> items;
  if (fs::is_directory(path))
    items = io::Catalog::from_folder(path).items();
  else
    items.push_back({path, "", ""});
  const auto scan = io::scan_dicom(items, io::OnBadFile::kSkip);
  std::ostringstream out;
  out << path << ": " << scan.files << " DICOM image files, " << scan.series.size() << " series, "
      << scan.patients << (scan.patients == 1 ? " patient" : " patients");
  if (!scan.non_image_objects.empty())
    out << ", " << scan.non_image_objects.size() << " non-image objects skipped";
  out << "\n";
  for (size_t i = 0; i < scan.series.size(); ++i) {
    const auto& series = scan.series[i];
    const auto& f = series.format;
    out << "\nseries " << i + 1 << "   first file " << series.slices.front().path << "\n"
        << "  modality      " << (f.modality.empty() ? "(none)" : f.modality) << "\n"
        << "  size          " << f.rows << " x " << f.columns << " x " << series.slices.size()
        << " (rows x columns x slices)" << (f.samples_per_pixel > 1 ? ", 3 samples" : "") << "\n"
        << "  spacing       ";
    if (f.pixel_spacing[0] > 0)
      out << number(f.pixel_spacing[0]) << " x " << number(f.pixel_spacing[1]) << " mm";
    else
      out << "(no pixel spacing)";
    out << ", slices " << number(series.slice_spacing) << " mm apart, thickness "
        << number(f.slice_thickness) << " mm, ordered by " << series.ordered_by << "\n"
        << "  transfer      " << join(series.transfer_syntaxes, ", ") << "\n"
        << "  photometric   " << f.photometric << ", " << f.bits_stored << " of "
        << f.bits_allocated << " bits, " << (f.is_signed ? "signed" : "unsigned") << "\n"
        << "  rescale       ";
    if (f.has_modality_lut)
      out << "Modality LUT";
    else
      out << "slope " << number(f.rescale_slope) << ", intercept " << number(f.rescale_intercept);
    out << (f.modality == "CT" ? " (values in HU)" : "") << "\n";
    if (f.padding_value) {
      out << "  padding       stored " << *f.padding_value;
      if (f.padding_limit) out << " to " << *f.padding_limit;
      out << " (outside the field of view: " << (f.modality == "CT" ? "-1000 HU, " : "")
          << "excluded from values)\n";
    }
    if (series.phases > 1)
      out << "  phases        " << series.phases << " images at every position\n";
    if (series.missing_slices > 0)
      out << "  missing       " << series.missing_slices << " slices (gaps along the normal)\n";
    if (!stats) continue;
    Running values;
    int64_t padded = 0;
    std::vector<std::string> undecodable;
    for (const auto& slice : series.slices) {
      io::DicomFrame frame;
      try {
        frame = io::decode_dicom_frame(slice.path, slice.frame);
      } catch (const InputError& error) {
        if (items.size() == 1) throw;  // one file: its refusal is the answer
        undecodable.push_back(error.what());
        continue;
      }
      if (!frame.valid.defined()) {
        values.add(frame.values);
        continue;
      }
      values.add(frame.values.masked_select(frame.valid.unsqueeze(0)));
      padded += frame.valid.numel() - frame.valid.sum().item<int64_t>();
    }
    out << "  values        "
        << (values.count == 0 ? std::string("(every pixel is padding)") : values.line())
        << (f.modality == "CT" ? " HU" : "") << " (after rescale)\n";
    if (f.padding_value) out << "  padded        " << padded << " pixels\n";
    for (const auto& message : undecodable) out << "  not decoded   " << message << "\n";
  }
  for (const auto& other : scan.non_image_objects) out << "skipped " << other.message << "\n";
  for (const auto& bad : scan.bad_files) out << "skipped " << bad.message << "\n";
  return out.str();
}

std::string inspect_volume(const std::string& path, bool stats) {
  const auto volume = io::read_volume(path);
  const auto& s = volume.spacing;
  const auto& o = volume.origin;
  const auto& d = volume.direction;
  std::ostringstream out;
  out << "file       " << path << "\n"
      << "format     " << volume.format << "\n"
      << "size       " << volume.voxels.size(2) << " x " << volume.voxels.size(1) << " x "
      << volume.voxels.size(0) << " voxels (i x j x k)\n"
      << "spacing    " << number(s[0]) << " x " << number(s[1]) << " x " << number(s[2]) << " mm\n"
      << "origin     " << number(o[0]) << ", " << number(o[1]) << ", " << number(o[2]) << " mm\n"
      << "direction  ";
  for (size_t i = 0; i < 9; ++i) out << number(d[i]) << (i == 8 ? "\n" : i % 3 == 2 ? " | " : " ");
  if (stats) {
    Running values;
    values.add(volume.voxels);
    out << "values     " << values.line() << "\n";
  }
  return out.str();
}

std::string inspect_slide(const std::string& path) {
  // 1 µm/px stands in for a slide that states none, so that the rest can still be shown.
  io::Slide slide(path, 1.0);
  const auto& info = slide.info();
  std::ostringstream out;
  out << "file       " << path << "\n"
      << "vendor     " << info.vendor << "\n"
      << "mpp        "
      << (info.microns_per_pixel_from_config
              ? std::string("(not stated: set data.fallback_microns_per_pixel; 1 assumed below)")
              : number(info.microns_per_pixel_x) + " x " + number(info.microns_per_pixel_y) +
                    " µm per pixel at level 0")
      << "\n"
      << "objective  "
      << (info.objective_power > 0 ? number(info.objective_power) + "x" : "(not stated)") << "\n"
      << "levels     " << info.levels.size() << "\n";
  for (size_t i = 0; i < info.levels.size(); ++i) {
    const auto& l = info.levels[i];
    out << "  " << i << "  " << l.width << " x " << l.height << "  downsample "
        << number(l.downsample);
    if (l.tile_width > 0) out << "  tiles " << l.tile_width << " x " << l.tile_height;
    out << "\n";
  }
  if (!info.associated_images.empty()) {
    out << "associated";
    for (const auto& name : info.associated_images) out << " " << name;
    out << " (never used for training)\n";
  }
  const domains::TissueOptions options;
  const auto map = domains::map_tissue(slide, options);
  out << "tissue     " << number(100.0 * map.mask.to(torch::kFloat32).mean().item<float>())
      << "% of level " << map.level << " (saturation above " << number(map.threshold) << "); "
      << map.tiles.size() << " of " << map.grid_tiles << " tiles of " << options.tile_size()
      << " px at " << number(options.microns_per_pixel()) << " µm/px are tissue\n";
  return out.str();
}

}  // namespace

std::string inspect(const std::string& path, bool stats) {
  if (fs::is_directory(path)) return inspect_dicom(path, stats);
  const auto format = io::detect_format(path);
  if (format == io::Format::kSlide) return inspect_slide(path);
  if (format == io::Format::kDicom) return inspect_dicom(path, stats);
  if (format == io::Format::kVolume) return inspect_volume(path, stats);
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
    if (band.scale != 1.0 || band.offset != 0.0)
      out << "  value = stored x " << number(band.scale) << " + " << number(band.offset);
    out << "\n";
  }
  auto* raster = dynamic_cast<io::GdalRaster*>(source.get());
  if (const auto georeference = source->georeference()) {
    const auto& geo = *georeference;
    const auto& t = geo.geo_transform;
    out << "crs      " << (geo.crs_name.empty() ? "(none)" : geo.crs_name) << "\n"
        << "transform " << number(t[0]) << ", " << number(t[1]) << ", " << number(t[2]) << ", "
        << number(t[3]) << ", " << number(t[4]) << ", " << number(t[5])
        << " (x0, dx/col, dx/row, y0, dy/col, dy/row)\n";
    if (raster)
      out << "gsd      " << number(raster->ground_sample_distance()) << " map units per pixel\n";
  } else {
    out << "crs      (not georeferenced)\n";
  }
  if (raster) {
    const auto block = raster->block_size();
    out << "blocks   " << block[0] << " x " << block[1] << "\n";
    out << "overviews";
    if (raster->overviews().empty()) out << " (none)";
    for (const auto& o : raster->overviews()) out << " " << o[0] << "x" << o[1];
    out << "\n";
    try {
      const auto date = raster->acquisition_date();
      out << "date     "
          << (date ? date->first.iso() + " (" + date->second + ")" : "(none in the metadata)")
          << "\n";
    } catch (const InputError& e) {
      out << "date     " << e.what() << "\n";
    }
  }
  if (!stats) return out.str();

  std::vector<Running> per_band(info.bands.size());
  for (int64_t row = 0; row < info.height; row += kStripRows) {
    const int64_t rows = std::min(kStripRows, info.height - row);
    const auto strip = source->read({0, row, info.width, rows}).pixels;
    for (size_t b = 0; b < per_band.size(); ++b) {
      auto values = strip[static_cast<int64_t>(b)].flatten().to(torch::kFloat64);
      if (info.bands[b].nodata) values = values.masked_select(values != *info.bands[b].nodata);
      per_band[b].add(values);
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
