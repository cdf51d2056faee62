#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>

#include "base/fields.h"
#include "io/slide.h"

namespace pretext::domains {

/// Tissue detection on a low-resolution level and the tile grid kept from it.
///   TissueOptions().microns_per_pixel(0.5).tile_size(224).min_tissue_fraction(0.5)
struct TissueOptions {
  /// Target resolution of training tiles, µm per pixel (0.5: about 20x; 0.25: about 40x).
  TORCH_ARG(double, microns_per_pixel) = 0.5;
  /// Tile side in pixels at that resolution.
  TORCH_ARG(int64_t, tile_size) = 224;
  /// A tile is kept when at least this fraction of it is tissue.
  TORCH_ARG(double, min_tissue_fraction) = 0.5;
  /// Saturation threshold: Otsu's on the slide, but never below this (a blank slide's Otsu
  /// threshold splits noise).
  TORCH_ARG(double, min_saturation) = 0.07;
  /// Connected tissue regions smaller than this, in µm², are dust or debris and are dropped.
  TORCH_ARG(double, min_region_um2) = 10000.0;
  /// Tissue is detected on the coarsest level at least this wide (pixels), or level 0, reduced
  /// by the whole factor that brings it closest to this width from above.
  TORCH_ARG(int64_t, detection_width) = 1024;

 public:
  /// microns_per_pixel and min_tissue_fraction (the tile size is the data's image size; the
  /// detection thresholds keep their defaults).
  void visit_fields(FieldVisitor& visit);
};

/// A tile in level-0 pixels: top-left corner and side.
struct TileRef {
  int64_t x = 0;
  int64_t y = 0;
  int64_t side = 0;
};

/// The tissue of one slide.
struct TissueMap {
  at::Tensor mask;             ///< bool [H, W] at the detection level
  int64_t level = 0;           ///< the detection level
  int64_t factor = 1;          ///< detection-level pixels per mask pixel, each way
  double downsample = 1.0;     ///< level-0 pixels per mask pixel
  double threshold = 0.0;      ///< saturation threshold used
  std::vector<TileRef> tiles;  ///< grid tiles with enough tissue, row by row
  int64_t grid_tiles = 0;      ///< tiles in the whole grid
  /// The grid is the slide's own tile grid at the read level (one tile per stored tile, at its
  /// top-left corner), else contiguous tiles of the target size from the origin.
  bool on_tile_grid = false;
};

/// Otsu's threshold of `values` (any shape, in [0, 1]) over 256 bins.
double otsu_threshold(const at::Tensor& values);

/// HSV saturation (max - min) / max of RGB uint8 [3, H, W], float [H, W]; 0 where max is 0.
at::Tensor saturation(const at::Tensor& rgb);

/// `mask` (bool [H, W]) without its 8-connected regions of fewer than `min_pixels` pixels.
at::Tensor remove_small_regions(const at::Tensor& mask, int64_t min_pixels);

/// Detects tissue on `slide` and lays the tile grid at the target resolution over it.
TissueMap map_tissue(io::Slide& slide, const TissueOptions& options);

/// A picture for a person: the detection level with non-tissue dimmed and kept tiles outlined
/// in green, RGB uint8 [3, H, W].
at::Tensor tissue_thumbnail(io::Slide& slide, const TissueMap& map);

}  // namespace pretext::domains
