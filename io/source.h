#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

namespace pretext::io {

/// Sample type of a band as stored in the file.
enum class DataType { kUInt8, kUInt16, kInt16, kUInt32, kInt32, kFloat32, kFloat64, kOther };

/// "uint8", "uint16", ... as written in reports.
std::string to_string(DataType type);

/// Largest value of an unsigned integer type (255 for uint8); 1 for signed and float types, whose
/// values carry their own meaning.
double full_scale(DataType type);

struct BandInfo {
  std::string description;  ///< the file's band description, or "" when it has none
  DataType data_type = DataType::kOther;
  std::optional<double> nodata;  ///< the value the file marks as "no data", if any
  /// Physical value = stored * scale + offset (reflectance from digital numbers, say).
  double scale = 1.0;
  double offset = 0.0;
};

/// Where pixels sit on the ground, when the file says.
struct Georeference {
  std::string crs_name;  ///< e.g. "WGS 84 / UTM zone 32N"; empty when the file has a transform only
  std::string crs_wkt;
  /// GDAL's affine transform from pixel (column, row) to map coordinates:
  /// x = t[0] + column * t[1] + row * t[2];  y = t[3] + column * t[4] + row * t[5].
  std::array<double, 6> geo_transform{};
};

/// What a reader sees in a file, before reading any pixels.
struct SourceInfo {
  std::string path;
  std::string format;  ///< the reader's name for the format, e.g. "GTiff", "PNG", "JPEG"
  int64_t width = 0;   ///< pixels, full resolution
  int64_t height = 0;
  std::vector<BandInfo> bands;
};

/// A rectangle in full-resolution pixels, optionally resampled to `out_width` x `out_height`
/// (0 keeps the rectangle's own size).
struct Region {
  int64_t x = 0;
  int64_t y = 0;
  int64_t width = 0;
  int64_t height = 0;
  int64_t out_width = 0;
  int64_t out_height = 0;
};

/// Pixels of one region of one source, float32 [C, H, W] with the values as stored (no scaling)
/// unless the reader says otherwise.
struct Patch {
  at::Tensor pixels;
  /// bool [H, W]: true where every band has data; undefined when the reader does not tell.
  at::Tensor valid;
  std::string source;  ///< the file's path
  Region region;
  std::vector<std::string> band_names;
};

/// One opened image. Readers turn every library failure into an InputError naming the file.
class Source {
 public:
  virtual ~Source() = default;
  virtual const SourceInfo& info() const = 0;
  /// Where the pixels sit on the ground, when the file says. Looked up on first call: resolving
  /// a CRS costs more than reading a small tile.
  virtual std::optional<Georeference> georeference() { return std::nullopt; }
  /// Reads `region` of the 1-based `bands` (empty: all bands, in order).
  virtual Patch read(const Region& region, const std::vector<int64_t>& bands = {}) = 0;
  /// Whether `read` may be called from several threads at once on this handle.
  virtual bool shareable_between_threads() const = 0;
};

/// What a file is, from its content (not its name).
///   kDicom   DICOM Part 10 ("DICM" after the preamble, whatever the preamble holds);
///   kSlide   a whole-slide image: OpenSlide names a vendor for it, or reads it only as a generic
///            tiled TIFF and it is a pyramid of RGB without a georeference (a GeoTIFF or a plain
///            tiled image is a raster);
///   kTiff, kPng, kJpeg   2D images and rasters (GDAL);
///   kVolume  NIfTI / NRRD / MetaImage.
enum class Format { kTiff, kPng, kJpeg, kDicom, kVolume, kSlide, kUnknown };

/// The one place that decides what a file is, and so which reader opens it. Throws InputError
/// when the file cannot be read.
Format detect_format(const std::string& path);

/// Opens `path` as a 2D image with the reader its format calls for: GDAL for TIFF, PNG and JPEG
/// (and for a TIFF-based slide read whole), DCMTK for DICOM. Throws InputError for a missing
/// file, a format no reader knows, a 3D volume (read those with io::read_volume), a slide that is
/// not TIFF (read those with io::Slide), or a file its reader rejects.
std::unique_ptr<Source> open(const std::string& path);

}  // namespace pretext::io
