#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

typedef struct _openslide openslide_t;

namespace pretext::io {

/// One level of a slide's pyramid.
struct SlideLevel {
  int64_t width = 0;  ///< pixels at this level
  int64_t height = 0;
  double downsample = 1.0;  ///< level-0 pixels per pixel of this level
  /// The level's own tile grid (openslide.level[N].tile-width / -height); 0 when unknown.
  int64_t tile_width = 0;
  int64_t tile_height = 0;
};

/// What OpenSlide says about a whole-slide image.
struct SlideInfo {
  std::string path;
  std::string vendor;  ///< "aperio", "hamamatsu", "mirax", "generic-tiff", ...
  std::vector<SlideLevel> levels;
  /// At level 0: openslide.mpp-x / -y, else a TIFF's resolution tags, else the configured value.
  double microns_per_pixel_x = 0.0;
  double microns_per_pixel_y = 0.0;
  bool microns_per_pixel_from_config = false;  ///< the slide had no openslide.mpp-x / -y
  double objective_power = 0.0;                ///< 0 when the slide does not say
  /// Associated images (label, macro, thumbnail): listed, never used for training.
  std::vector<std::string> associated_images;
};

/// A whole-slide image opened through OpenSlide. One handle serves every thread: OpenSlide's
/// handles are thread-safe, and Debian's OpenSlide 3.4 keeps a fixed tile cache per handle, so a
/// handle per thread would multiply memory. OpenSlide's error state is checked after opening and
/// after every read; a slide in an error state is reported and never read again.
class Slide {
 public:
  /// Opens `path`. `fallback_microns_per_pixel` is used when the slide has no mpp (0: refuse such
  /// slides). With `direct_tiles`, reads that lie inside one tile of a TIFF-based slide's own
  /// grid (Aperio SVS, generic tiled TIFF) decode that tile with libtiff instead of going through
  /// OpenSlide's compositing, which costs several times the decoding; the pixels are the same (a
  /// test compares them). Throws InputError naming the file and OpenSlide's reason.
  Slide(const std::string& path, double fallback_microns_per_pixel = 0.0, bool direct_tiles = true);
  ~Slide();
  Slide(const Slide&) = delete;
  Slide& operator=(const Slide&) = delete;

  const SlideInfo& info() const { return info_; }

  /// RGB uint8 [3, height, width] of `level`, top-left at level-0 pixel (x, y). Transparent
  /// pixels (outside the scanned area) come back white; OpenSlide's premultiplied ARGB is
  /// un-premultiplied and composited on white. Throws InputError on a failed read.
  at::Tensor read_region(int64_t x, int64_t y, int64_t level, int64_t width, int64_t height);

  /// The finest level whose pixels are no larger than `microns_per_pixel` (level 0 when the
  /// target is finer than the slide).
  int64_t level_for(double microns_per_pixel) const;

  /// A `size` x `size` RGB uint8 tile at `microns_per_pixel`, top-left at level-0 pixel (x, y):
  /// read from level_for(mpp) and resized (area averaging when shrinking).
  at::Tensor read_tile(int64_t x, int64_t y, double microns_per_pixel, int64_t size);

  /// A whole level as RGB uint8 [3, H / factor, W / factor], each pixel the rounded mean of a
  /// factor x factor block (edges beyond a whole block dropped), for tissue detection. Read in
  /// strips, so memory is that of the result however large the level.
  at::Tensor read_level(int64_t level, int64_t factor = 1);

  /// Reads served by the direct tile path so far.
  int64_t direct_reads() const { return direct_reads_.load(); }

 private:
  /// Throws when the handle is (or just went) into an error state.
  void check(const std::string& what);

  /// The region decoded by libtiff from the one tile of the level that holds it, or undefined
  /// when the direct path does not apply.
  at::Tensor read_direct(int64_t x, int64_t y, int64_t level, int64_t width, int64_t height);
  void map_direct_levels();

  openslide_t* handle_ = nullptr;
  SlideInfo info_;
  struct DirectTiles;
  std::unique_ptr<DirectTiles> direct_;
  std::atomic<int64_t> direct_reads_{0};
  std::atomic<bool> failed_{false};
  std::mutex error_mutex_;
  std::string error_;  // guarded by error_mutex_
};

/// detect_format(path) == Format::kSlide.
bool is_slide(const std::string& path);
/// detect_format's test for a file that is not DICOM, PNG or a volume: OpenSlide names a vendor
/// other than "generic-tiff", or a generic tiled TIFF is a pyramid of RGB(A) without a
/// georeference. Call detect_format instead.
bool is_whole_slide(const std::string& path);

}  // namespace pretext::io
