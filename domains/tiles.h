#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>

#include "domains/tissue.h"
#include "io/catalog.h"
#include "io/dataset.h"
#include "io/dicom.h"
#include "io/slide.h"

namespace pretext::domains {

/// How whole-slide images become tissue tiles.
///   TileDataset tiles(catalog, TileDatasetOptions().tissue(TissueOptions().tile_size(224)));
struct TileDatasetOptions {
  /// Target resolution, tile size, tissue threshold and detection level.
  TORCH_ARG(TissueOptions, tissue) = {};
  /// µm per pixel for slides that state none (0: such a slide is a bad file).
  TORCH_ARG(double, fallback_microns_per_pixel) = 0.0;
  /// A slide that cannot be opened or mapped: stop, or skip and list it.
  TORCH_ARG(io::OnBadFile, on_bad_file) = io::OnBadFile::kFail;
  /// Slides kept open at once (each OpenSlide handle holds its own tile cache).
  TORCH_ARG(int64_t, open_slides) = 16;
  /// Where to save each slide's tissue thumbnail as PNG ("" saves none).
  TORCH_ARG(std::string, thumbnail_dir) = "";
  /// An RGB image (PNG, JPEG, TIFF) of well-stained H&E: every tile is Macenko-normalised to its
  /// stains ("" leaves tiles as scanned). Tiles with too little stain to estimate are kept as
  /// they are.
  TORCH_ARG(std::string, stain_reference) = "";

 public:
  /// The tissue fields, fallback_microns_per_pixel, open_slides, stain_reference (on_bad_file is
  /// shared by every kind of data; the thumbnail folder is the pipeline's).
  void visit_fields(FieldVisitor& visit);
};

/// The tissue tiles of a catalog's slides, one example per tile of the grid at the target
/// resolution, read on demand (RGB float [3, S, S] in [0, 1]). Labels and splits are the slides'.
/// Slide handles are shared by all loader threads and at most `open_slides` are open at once.
class TileDataset : public io::Dataset {
 public:
  /// Opens every slide once to map its tissue. Throws InputError naming the slide under kFail,
  /// or when no slide gives a tile.
  TileDataset(const io::Catalog& catalog, TileDatasetOptions options);

  int64_t size() const override { return static_cast<int64_t>(tiles_.size()); }
  io::Example get(int64_t index) const override;
  int64_t channels() const override { return 3; }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  bool multi_label() const override { return multi_label_; }
  /// "slide.svs#x=1024,y=2048" (level-0 pixels).
  io::CatalogItem item(int64_t index) const override;

  /// One line per slide: tiles kept of the grid, detection level, where the resolution came
  /// from (a warning where the fallback was assumed).
  std::vector<io::DatasetNote> notes() const override { return notes_; }
  std::vector<io::BadFile> bad_files() const override { return bad_slides_; }
  std::string summary() const override;

 protected:
  /// The slide (kAuto, kSlide, kFile).
  std::string own_group(int64_t index, io::GroupBy by) const override;

 public:
 private:
  struct SlideEntry {
    io::CatalogItem item;
    int64_t grid_tiles = 0;
  };
  struct Tile {
    int64_t slide = 0;
    int64_t x = 0, y = 0;
  };
  std::shared_ptr<io::Slide> slide(int64_t index) const;

  TileDatasetOptions options_;
  std::vector<SlideEntry> slides_;
  std::vector<Tile> tiles_;
  std::vector<std::string> class_names_;
  bool multi_label_ = false;
  std::vector<io::DatasetNote> notes_;
  std::vector<io::BadFile> bad_slides_;
  at::Tensor reference_stains_, reference_max_;  // undefined without a stain reference
  mutable std::mutex open_mutex_;
  mutable std::list<std::pair<int64_t, std::shared_ptr<io::Slide>>> open_;  // most recent first
};

}  // namespace pretext::domains
