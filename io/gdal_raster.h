#pragma once

#include <array>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "io/acquisition_date.h"
#include "io/source.h"

typedef void* GDALDatasetH;

namespace pretext::io {

/// A pixel grid on the ground: what a warped raster is resampled onto.
struct Grid {
  std::string crs_wkt;
  std::array<double, 6> geo_transform{};  ///< GDAL's pixel -> map transform
  int64_t width = 0;
  int64_t height = 0;
};

/// A rectangle on the ground in some CRS's units.
struct Bounds {
  double min_x = 0, min_y = 0, max_x = 0, max_y = 0;
  double area() const { return (max_x - min_x) * (max_y - min_y); }
};

/// How GdalRaster::read_window reads.
///   RasterReadOptions().bands({4, 3, 2, 8}).ground_sample_distance(20)
struct RasterReadOptions {
  /// 1-based bands, in order; empty: all data bands.
  TORCH_ARG(std::vector<int64_t>, bands) = {};
  /// Map units per output pixel; 0 keeps the window's own pixels. Coarser than the file: GDAL
  /// reads the overview overview_for() names and resamples (average) from there.
  TORCH_ARG(double, ground_sample_distance) = 0.0;
  /// Stored value meaning "no data" for files that declare neither nodata nor a mask.
  TORCH_ARG(std::optional<double>, fallback_nodata) = std::nullopt;
  /// A band of the file that marks clouds (1-based; 0: none): pixels where it holds one of
  /// `cloud_values` are invalid, e.g. Sentinel-2's scene classification with {3, 8, 9, 10}
  /// (shadow, cloud medium / high probability, cirrus); with no values, wherever it is not 0.
  TORCH_ARG(int64_t, cloud_band) = 0;
  TORCH_ARG(std::vector<double>, cloud_values) = {};
};

/// A raster read through GDAL: GeoTIFF / COG and plain PNG, JPEG, TIFF images. Windows are read
/// with RasterIO, so only the blocks a window touches are decoded.
class GdalRaster : public Source {
 public:
  /// Opens read-only. Throws InputError with GDAL's reason.
  explicit GdalRaster(const std::string& path);
  ~GdalRaster() override;
  GdalRaster(const GdalRaster&) = delete;
  GdalRaster& operator=(const GdalRaster&) = delete;

  const SourceInfo& info() const override { return info_; }
  std::optional<Georeference> georeference() override;
  Patch read(const Region& region, const std::vector<int64_t>& bands = {}) override;
  /// A GDAL dataset handle keeps per-handle caches and is not thread-safe.
  bool shareable_between_threads() const override { return false; }

  /// `path` resampled (bilinear) onto `grid` through GDAL's warper (a warped VRT: pixels are
  /// warped as windows are read), so that a window means the same ground as on the grid's own
  /// raster. Pixels outside the file's footprint are invalid. Throws InputError when the file
  /// has no georeference.
  static std::unique_ptr<GdalRaster> warped(const std::string& path, const Grid& grid);

  /// `region` of the chosen bands with scale and offset applied and the validity mask: from the
  /// band's nodata value, else its mask band (internal mask or alpha), else fallback_nodata.
  /// Throws InputError naming the file for a window outside the raster or a failed read.
  Patch read_window(const Region& region, const RasterReadOptions& options);

  /// The 1-based band whose description is `name`; InputError listing the descriptions if none.
  int64_t band_named(const std::string& name) const;
  /// Map units per pixel along x at full resolution; 0 without a georeference.
  double ground_sample_distance();
  /// The overview a read at `ground_sample_distance` uses: the coarsest at least as fine, -1 for
  /// full resolution (GDAL's own choice in RasterIO).
  int64_t overview_for(double ground_sample_distance);
  /// Overview sizes, finest first.
  const std::vector<std::array<int64_t, 2>>& overviews() const { return overviews_; }
  /// The internal block (tile or strip) size: reads aligned to it decode each block once.
  std::array<int64_t, 2> block_size() const { return block_size_; }
  /// The pixel window covering `bounds` (map units of the file's CRS), rounded outward; it may
  /// extend beyond the raster. InputError without a georeference or for a rotated grid.
  Region window_of(const Bounds& bounds);
  /// The raster's extent in the CRS `crs_wkt` (corners and edge points transformed).
  Bounds footprint_in(const std::string& crs_wkt);
  /// This raster's own grid (CRS, transform, size); InputError without a georeference.
  Grid grid();
  /// The acquisition date the metadata states (ACQUISITION_DATE, DATE_ACQUIRED, SENSING_TIME,
  /// datetime, TIFFTAG_DATETIME, ...), with the item's name; nullopt when none does.
  /// InputError naming the file and item when one does but cannot be parsed.
  std::optional<std::pair<Date, std::string>> acquisition_date();

 private:
  GdalRaster() = default;
  void describe(const std::string& path);
  /// The 1-based data bands `bands` names (all when empty); InputError for one out of range.
  std::vector<int64_t> chosen_bands(const std::vector<int64_t>& bands) const;
  /// read(), resampling by nearest neighbour when `nearest` (for classes and masks).
  Patch read(const Region& region, const std::vector<int64_t>& bands, bool nearest);
  const std::array<double, 6>& north_up_transform(const char* what);
  GDALDatasetH dataset_ = nullptr;
  GDALDatasetH warped_source_ = nullptr;  // the file behind a warped VRT
  SourceInfo info_;
  std::vector<int> data_bands_;  // GDAL band numbers of info_.bands (alpha bands are masks)
  std::vector<std::array<int64_t, 2>> overviews_;
  std::array<int64_t, 2> block_size_{};
  std::optional<std::optional<Georeference>> georeference_;  // outer: looked up yet
};

/// Installs a quiet GDAL error handler (GDAL never prints on its own; failures surface through
/// CPLGetLastErrorMsg in our errors) and registers the drivers. Safe to call many times.
void init_gdal();

/// Sizes GDAL's block cache (decoded blocks, shared by every dataset of the process), in MiB.
void set_gdal_cache_mb(int64_t mib);

}  // namespace pretext::io

namespace pretext::io {

/// Writes `pixels` [C, H, W] as a GeoTIFF (DEFLATE, tiled when both sides are at least 256) of
/// `data_type` (uint8, uint16 or float32), with `georeference` when given. Values are rounded and
/// clamped for integer types. Throws InputError with GDAL's reason.
void write_geotiff(const std::string& path, const at::Tensor& pixels, DataType data_type,
                   const std::optional<Georeference>& georeference = std::nullopt);

/// The bytes of a PNG of `pixels` [C, H, W] (1 or 3 bands, values 0-255), for reports.
std::string encode_png(const at::Tensor& pixels);

}  // namespace pretext::io

namespace pretext::io {

/// The WKT of an EPSG coordinate reference system, e.g. 32632 for WGS 84 / UTM zone 32N.
/// Throws InputError when GDAL does not know the code.
std::string crs_wkt_from_epsg(int code);

}  // namespace pretext::io
