#include "io/slide.h"

#include <openslide/openslide.h>
#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdlib>
#include <string>
#include <vector>

#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/gdal_raster.h"
#include "io/source.h"

namespace pretext::io {
namespace {

double number_property(openslide_t* handle, const std::string& name) {
  const char* value = openslide_get_property_value(handle, name.c_str());
  if (!value) return 0.0;
  char* end = nullptr;
  const double parsed = std::strtod(value, &end);
  return end != value && std::isfinite(parsed) && parsed > 0 ? parsed : 0.0;
}

std::string where(const std::string& path) { return path + ": OpenSlide: "; }

// libtiff reports through global handlers that print by default (and that GDAL relies on); the
// direct path's handles get their own handlers that swallow messages: it falls back to
// OpenSlide, which reports.
int swallow(TIFF*, void*, const char*, const char*, va_list) { return 1; }

TIFF* open_quiet(const std::string& path) {
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(options, swallow, nullptr);
  TIFFOpenOptionsSetWarningHandlerExtR(options, swallow, nullptr);
  TIFF* tiff = TIFFOpenExt(path.c_str(), "rm", options);
  TIFFOpenOptionsFree(options);
  return tiff;
}

}  // namespace

// Per pyramid level, the TIFF directory holding it and a pool of libtiff handles already set to
// that directory (a TIFF handle is not thread-safe; setting a directory re-reads its tile table).
struct Slide::DirectTiles {
  std::string path;
  struct Level {
    tdir_t directory = 0;
    uint32_t tile_width = 0, tile_height = 0;
    bool usable = false;
    std::mutex mutex;
    std::vector<TIFF*> idle;  // guarded by mutex
  };
  std::vector<std::unique_ptr<Level>> levels;

  ~DirectTiles() {
    for (auto& level : levels)
      for (TIFF* tiff : level->idle) TIFFClose(tiff);
  }

  TIFF* acquire(Level& level) {
    {
      const std::lock_guard<std::mutex> lock(level.mutex);
      if (!level.idle.empty()) {
        TIFF* tiff = level.idle.back();
        level.idle.pop_back();
        return tiff;
      }
    }
    TIFF* tiff = open_quiet(path);
    if (tiff && !TIFFSetDirectory(tiff, level.directory)) {
      TIFFClose(tiff);
      return nullptr;
    }
    if (tiff) TIFFSetField(tiff, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    return tiff;
  }

  void release(Level& level, TIFF* tiff) {
    const std::lock_guard<std::mutex> lock(level.mutex);
    level.idle.push_back(tiff);
  }
};

bool is_slide(const std::string& path) {
  try {
    return detect_format(path) == Format::kSlide;
  } catch (const InputError&) {
    return false;  // unreadable: not a slide either
  }
}

bool is_whole_slide(const std::string& path) {
  const char* vendor = openslide_detect_vendor(path.c_str());
  if (!vendor) return false;
  if (std::string(vendor) != "generic-tiff") return true;
  try {
    GdalRaster raster(path);
    const auto bands = raster.info().bands.size();
    if (raster.georeference() || (bands != 3 && bands != 4)) return false;
    return Slide(path, 1.0).info().levels.size() > 1;
  } catch (const InputError&) {
    return false;  // the raster reader says what is wrong when the file is opened
  }
}

Slide::Slide(const std::string& path, double fallback_microns_per_pixel, bool direct_tiles) {
  info_.path = path;
  const char* vendor = openslide_detect_vendor(path.c_str());
  if (!vendor) throw InputError(where(path) + "not a slide format OpenSlide reads");
  info_.vendor = vendor;
  handle_ = openslide_open(path.c_str());
  if (!handle_) throw InputError(where(path) + "cannot open");
  if (const char* error = openslide_get_error(handle_)) {
    const std::string message = where(path) + error;
    openslide_close(handle_);
    handle_ = nullptr;
    throw InputError(message);
  }
  const int32_t count = openslide_get_level_count(handle_);
  for (int32_t level = 0; level < count; ++level) {
    SlideLevel l;
    openslide_get_level_dimensions(handle_, level, &l.width, &l.height);
    l.downsample = openslide_get_level_downsample(handle_, level);
    const std::string prefix = "openslide.level[" + std::to_string(level) + "].";
    l.tile_width = static_cast<int64_t>(number_property(handle_, prefix + "tile-width"));
    l.tile_height = static_cast<int64_t>(number_property(handle_, prefix + "tile-height"));
    info_.levels.push_back(l);
  }
  check("reading the level geometry");
  if (info_.levels.empty() || info_.levels[0].width <= 0 || info_.levels[0].height <= 0)
    throw InputError(where(path) + "no readable level");
  info_.microns_per_pixel_x = number_property(handle_, OPENSLIDE_PROPERTY_NAME_MPP_X);
  info_.microns_per_pixel_y = number_property(handle_, OPENSLIDE_PROPERTY_NAME_MPP_Y);
  if (info_.microns_per_pixel_x <= 0 || info_.microns_per_pixel_y <= 0) {
    // OpenSlide 3.4 leaves a generic TIFF's resolution tags unread (4.0 reads them).
    const char* unit = openslide_get_property_value(handle_, "tiff.ResolutionUnit");
    const double microns_per_unit = !unit                               ? 0.0
                                    : std::string(unit) == "centimeter" ? 10000.0
                                    : std::string(unit) == "inch"       ? 25400.0
                                                                        : 0.0;
    const double x = number_property(handle_, "tiff.XResolution");
    const double y = number_property(handle_, "tiff.YResolution");
    if (microns_per_unit > 0 && x > 0 && y > 0) {
      info_.microns_per_pixel_x = microns_per_unit / x;
      info_.microns_per_pixel_y = microns_per_unit / y;
    }
  }
  if (info_.microns_per_pixel_x <= 0 || info_.microns_per_pixel_y <= 0) {
    if (fallback_microns_per_pixel <= 0)
      throw InputError(
          where(path) + "the slide states no microns per pixel (give a fallback resolution)",
          "fallback_microns_per_pixel");
    info_.microns_per_pixel_x = info_.microns_per_pixel_y = fallback_microns_per_pixel;
    info_.microns_per_pixel_from_config = true;
  }
  info_.objective_power = number_property(handle_, OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
  if (const char* const* names = openslide_get_associated_image_names(handle_))
    for (; *names; ++names) info_.associated_images.emplace_back(*names);
  if (direct_tiles && (info_.vendor == "aperio" || info_.vendor == "generic-tiff"))
    map_direct_levels();
}

void Slide::map_direct_levels() {
  TIFF* tiff = open_quiet(info_.path);
  if (!tiff) return;
  direct_ = std::make_unique<DirectTiles>();
  direct_->path = info_.path;
  for (const auto& level : info_.levels) {
    auto mapped = std::make_unique<DirectTiles::Level>();
    // The tiled, 8-bit RGB directory of the level's size; JPEG, deflate, LZW or no compression.
    for (tdir_t d = 0; TIFFSetDirectory(tiff, d); ++d) {
      uint32_t width = 0, height = 0, tile_width = 0, tile_height = 0;
      uint16_t samples = 0, bits = 0, planar = PLANARCONFIG_CONTIG, compression = 0;
      TIFFGetField(tiff, TIFFTAG_IMAGEWIDTH, &width);
      TIFFGetField(tiff, TIFFTAG_IMAGELENGTH, &height);
      TIFFGetFieldDefaulted(tiff, TIFFTAG_SAMPLESPERPIXEL, &samples);
      TIFFGetFieldDefaulted(tiff, TIFFTAG_BITSPERSAMPLE, &bits);
      TIFFGetFieldDefaulted(tiff, TIFFTAG_PLANARCONFIG, &planar);
      TIFFGetFieldDefaulted(tiff, TIFFTAG_COMPRESSION, &compression);
      if (!TIFFIsTiled(tiff) || width != level.width || height != level.height) continue;
      TIFFGetField(tiff, TIFFTAG_TILEWIDTH, &tile_width);
      TIFFGetField(tiff, TIFFTAG_TILELENGTH, &tile_height);
      mapped->usable = samples == 3 && bits == 8 && planar == PLANARCONFIG_CONTIG &&
                       (compression == COMPRESSION_JPEG || compression == COMPRESSION_NONE ||
                        compression == COMPRESSION_ADOBE_DEFLATE ||
                        compression == COMPRESSION_DEFLATE || compression == COMPRESSION_LZW);
      mapped->directory = d;
      mapped->tile_width = tile_width;
      mapped->tile_height = tile_height;
      break;
    }
    direct_->levels.push_back(std::move(mapped));
  }
  TIFFClose(tiff);
}

torch::Tensor Slide::read_direct(int64_t x, int64_t y, int64_t level, int64_t width,
                                 int64_t height) {
  if (!direct_) return {};
  auto& mapped = *direct_->levels[static_cast<size_t>(level)];
  const auto& geometry = info_.levels[static_cast<size_t>(level)];
  const auto downsample = geometry.downsample;
  const double lx = static_cast<double>(x) / downsample, ly = static_cast<double>(y) / downsample;
  // Inside one whole tile of the level's grid, inside the image.
  if (!mapped.usable || lx != std::floor(lx) || ly != std::floor(ly) || x < 0 || y < 0) return {};
  const int64_t tw = mapped.tile_width, th = mapped.tile_height;
  const auto left = static_cast<int64_t>(lx), top = static_cast<int64_t>(ly);
  const int64_t tile_x = left / tw * tw, tile_y = top / th * th;
  if (left + width > tile_x + tw || top + height > tile_y + th || tile_x + tw > geometry.width ||
      tile_y + th > geometry.height)
    return {};
  TIFF* tiff = direct_->acquire(mapped);
  if (!tiff) return {};
  thread_local std::vector<uint8_t> interleaved;
  interleaved.resize(static_cast<size_t>(tw * th * 3));
  const auto tile =
      TIFFComputeTile(tiff, static_cast<uint32_t>(tile_x), static_cast<uint32_t>(tile_y), 0, 0);
  const auto bytes = TIFFReadEncodedTile(tiff, tile, interleaved.data(),
                                         static_cast<tmsize_t>(interleaved.size()));
  direct_->release(mapped, tiff);
  if (bytes != static_cast<tmsize_t>(interleaved.size())) return {};  // OpenSlide will say why
  ++direct_reads_;
  // The requested part, RGBRGB... to planes in one pass (a quarter of torch's permute +
  // contiguous here).
  const int64_t n = width * height;
  auto rgb = torch::empty({3, height, width}, torch::kUInt8);
  auto* out = rgb.data_ptr<uint8_t>();
  for (int64_t row = 0; row < height; ++row) {
    const uint8_t* in = interleaved.data() + ((top - tile_y + row) * tw + (left - tile_x)) * 3;
    for (int64_t column = 0; column < width; ++column, in += 3) {
      const int64_t i = row * width + column;
      out[i] = in[0];
      out[n + i] = in[1];
      out[2 * n + i] = in[2];
    }
  }
  return rgb;
}

Slide::~Slide() {
  if (handle_) openslide_close(handle_);
}

void Slide::check(const std::string& what) {
  if (failed_.load()) {
    const std::lock_guard<std::mutex> lock(error_mutex_);
    throw InputError(where(info_.path) + "in an error state since an earlier failure (" + error_ +
                     "); not read again");
  }
  if (const char* error = openslide_get_error(handle_)) {
    const std::lock_guard<std::mutex> lock(error_mutex_);
    if (!failed_.exchange(true)) error_ = error;
    throw InputError(where(info_.path) + what + ": " + error);
  }
}

torch::Tensor Slide::read_region(int64_t x, int64_t y, int64_t level, int64_t width,
                                 int64_t height) {
  if (level < 0 || level >= static_cast<int64_t>(info_.levels.size()) || width <= 0 || height <= 0)
    throw InputError(where(info_.path) + "no region " + std::to_string(width) + "x" +
                     std::to_string(height) + " at level " + std::to_string(level));
  check("before reading");
  if (auto tile = read_direct(x, y, level, width, height); tile.defined()) return tile;
  auto argb = torch::empty({height, width}, torch::kInt32);
  openslide_read_region(handle_, reinterpret_cast<uint32_t*>(argb.data_ptr<int32_t>()), x, y,
                        static_cast<int32_t>(level), width, height);
  check("reading " + std::to_string(width) + "x" + std::to_string(height) + " at level " +
        std::to_string(level) + " from (" + std::to_string(x) + ", " + std::to_string(y) + ")");
  // Premultiplied ARGB over white: c + (255 - alpha) per channel, exact for every alpha.
  auto rgb = torch::empty({3, height, width}, torch::kUInt8);
  const auto* in = reinterpret_cast<const uint32_t*>(argb.data_ptr<int32_t>());
  auto* out = rgb.data_ptr<uint8_t>();
  const int64_t n = width * height;
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t p = in[i];
    const uint32_t background = 255 - (p >> 24);
    out[i] = static_cast<uint8_t>(((p >> 16) & 0xff) + background);
    out[n + i] = static_cast<uint8_t>(((p >> 8) & 0xff) + background);
    out[2 * n + i] = static_cast<uint8_t>((p & 0xff) + background);
  }
  return rgb;
}

int64_t Slide::level_for(double microns_per_pixel) const {
  int64_t best = 0;
  for (int64_t level = 0; level < static_cast<int64_t>(info_.levels.size()); ++level) {
    const double level_mpp =
        info_.microns_per_pixel_x * info_.levels[static_cast<size_t>(level)].downsample;
    if (level_mpp <= microns_per_pixel * (1 + 1e-6)) best = level;
  }
  return best;
}

torch::Tensor Slide::read_tile(int64_t x, int64_t y, double microns_per_pixel, int64_t size) {
  const int64_t level = level_for(microns_per_pixel);
  const double downsample = info_.levels[static_cast<size_t>(level)].downsample;
  // The tile's side in level-0 pixels, then in pixels of the level read.
  const double side0 = static_cast<double>(size) * microns_per_pixel / info_.microns_per_pixel_x;
  const auto side = std::max<int64_t>(1, std::llround(side0 / downsample));
  auto tile = read_region(x, y, level, side, side);
  if (side == size) return tile;
  namespace F = torch::nn::functional;
  auto options = F::InterpolateFuncOptions().size(std::vector<int64_t>{size, size});
  options = side > size ? options.mode(torch::kArea)
                        : options.mode(torch::kBilinear).align_corners(false);
  return F::interpolate(tile.unsqueeze(0).to(torch::kFloat32), options)
      .squeeze(0)
      .round()
      .clamp(0, 255)
      .to(torch::kUInt8);
}

torch::Tensor Slide::read_level(int64_t level, int64_t factor) {
  const auto& l = info_.levels.at(static_cast<size_t>(level));
  if (factor <= 1) return read_region(0, 0, level, l.width, l.height);
  const int64_t width = l.width / factor, height = l.height / factor;
  if (width == 0 || height == 0)
    throw InputError(where(info_.path) + "level " + std::to_string(level) + " is smaller than " +
                     std::to_string(factor) + " pixels");
  auto out = torch::empty({3, height, width}, torch::kUInt8);
  // Output rows per strip: about 64 Ki level pixels (256 KiB of ARGB) read at a time.
  const int64_t strip = std::max<int64_t>(1, (1 << 16) / (width * factor * factor));
  for (int64_t row = 0; row < height; row += strip) {
    const int64_t rows = std::min(strip, height - row);
    const auto y0 = static_cast<int64_t>(std::llround(row * factor * l.downsample));
    const auto pixels = read_region(0, y0, level, width * factor, rows * factor);
    out.slice(1, row, row + rows) =
        torch::avg_pool2d(pixels.to(torch::kFloat32).unsqueeze(0), factor).squeeze(0).round();
  }
  return out;
}

}  // namespace pretext::io
