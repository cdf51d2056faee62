#pragma once

#include <string>

#include "io/source.h"

typedef void* GDALDatasetH;

namespace pretext::io {

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

 private:
  GDALDatasetH dataset_ = nullptr;
  SourceInfo info_;
  std::optional<std::optional<Georeference>> georeference_;  // outer: looked up yet
};

/// Installs a quiet GDAL error handler (GDAL never prints on its own; failures surface through
/// CPLGetLastErrorMsg in our errors) and registers the drivers. Safe to call many times.
void init_gdal();

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
