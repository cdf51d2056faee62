#pragma once

// Test data made on the spot: a private temporary folder per test, small rasters written through
// GDAL, and corrupted copies.

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>

namespace pretext::testing {

/// A fresh folder under $TMPDIR, removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  /// path() + "/" + name
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Writes `pixels` [C, H, W] (values already in the type's range) with GDAL's `driver`
/// ("GTiff", "PNG", "JPEG"; PNG and JPEG through CreateCopy from memory), uint8 or uint16.
void write_raster(const std::string& path, const at::Tensor& pixels, const std::string& driver,
                  bool uint16 = false);

/// A multispectral GeoTIFF for raster tests: uint16 pixels [C, H, W] (tiled 32 x 32, DEFLATE)
/// and what the file says about them, written with GDAL's C API.
struct SceneSpec {
  at::Tensor pixels;
  std::vector<std::string> descriptions;
  std::optional<double> nodata;
  double scale = 1.0, offset = 0.0;
  int epsg = 32632;  ///< 0: no georeference
  std::array<double, 6> transform{500000, 10, 0, 5000000, 0, -10};
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<int> overviews;  ///< factors, built by averaging
  at::Tensor dataset_mask;     ///< uint8 [H, W], written as an internal per-dataset mask
};
void write_scene(const std::string& path, const SceneSpec& scene);

/// Ground truth for alignment tests: a smooth field over UTM zone 32N coordinates (metres),
/// about 1,000 to 3,400.
double ground_value(double easting, double northing);
/// ground_value at the centre of every pixel of a grid in EPSG `epsg` (pixel centres moved to
/// UTM 32N with OGR): the same ground as any other CRS's grid shows. [1, height, width].
at::Tensor ground_pixels(int epsg, const std::array<double, 6>& transform, int64_t width,
                         int64_t height);

/// A scene of the same ground in WGS 84 longitude / latitude, `step` degrees per pixel, covering
/// the UTM 32N rectangle from (west, south) to (east, north) metres.
SceneSpec wgs84_ground_scene(double west, double south, double east, double north, double step);

/// Keeps the first `fraction` of the file's bytes.
void truncate_file(const std::string& path, double fraction);
/// Writes `text` to `path`.
void write_text(const std::string& path, const std::string& text);
/// The whole file ("" when it cannot be read).
std::string read_text(const std::string& path);
/// The message of the InputError `action` throws, or "no error".
std::string input_error_of(const std::function<void()>& action);
/// The option an InputError of `action` names (InputError::option), "no error" when none is
/// thrown.
std::string input_error_option(const std::function<void()>& action);
/// Runs a shell command; returns its exit status and fills `output` with stdout + stderr.
int run_command(const std::string& command, std::string* output);

}  // namespace pretext::testing
