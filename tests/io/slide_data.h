#pragma once

// Whole-slide test images written with libtiff: pyramidal tiled TIFFs that OpenSlide opens as
// Aperio (ImageDescription with MPP and AppMag) or as generic tiled TIFF.

#include <cstdint>
#include <string>

#include <ATen/Tensor.h>

namespace pretext::testing {

struct SlideSpec {
  /// Level 0 as RGB uint8 [3, H, W]; each further level halves it (area average).
  at::Tensor level0;
  int levels = 3;
  int tile = 64;  ///< tile side in pixels (a multiple of 16)
  /// "aperio": ImageDescription "Aperio Image Library ... |AppMag = 20|MPP = <mpp>"; "generic":
  /// no vendor description, mpp (when > 0) from the resolution tags.
  std::string vendor = "aperio";
  double microns_per_pixel = 0.5;
  bool jpeg = false;  ///< JPEG tiles (quality 90) instead of lossless deflate
};

void write_slide(const std::string& path, const SlideSpec& spec);

/// A level-0 image of `height` x `width`: white background (RGB 245) with an H&E-coloured
/// rectangle of tissue at rows [top, bottom), columns [left, right).
at::Tensor tissue_image(int64_t height, int64_t width, int64_t top, int64_t left, int64_t bottom,
                        int64_t right);

}  // namespace pretext::testing
