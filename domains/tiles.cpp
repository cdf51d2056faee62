#include "domains/tiles.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <torch/types.h>

#include "base/errors.h"
#include "domains/stain.h"
#include "io/gdal_raster.h"
#include "io/source.h"

namespace pretext::domains {
namespace fs = std::filesystem;
namespace {

std::string percent(int64_t part, int64_t whole) {
  char text[16];
  std::snprintf(text, sizeof text, "%.0f%%", whole > 0 ? 100.0 * part / whole : 0.0);
  return text;
}

void save_thumbnail(const std::string& dir, int64_t index, const std::string& slide_path,
                    const at::Tensor& rgb) {
  std::error_code error;
  fs::create_directories(dir, error);
  char prefix[32];
  std::snprintf(prefix, sizeof prefix, "%04ld_", static_cast<long>(index));
  const std::string path = dir + "/" + prefix + fs::path(slide_path).stem().string() + ".png";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << io::encode_png(rgb.to(torch::kFloat32));
  if (!out) throw InputError(path + ": cannot write the tissue thumbnail");
}

}  // namespace

TileDataset::TileDataset(const io::Catalog& catalog, TileDatasetOptions options)
    : options_(std::move(options)), multi_label_(catalog.multi_label()) {
  if (!options_.stain_reference().empty()) {
    const auto& path = options_.stain_reference();
    auto image = io::open(path);
    if (image->info().bands.size() < 3)
      throw InputError(path + ": the stain reference must be an RGB image");
    const auto rgb =
        image->read({0, 0, image->info().width, image->info().height}, {1, 2, 3}).pixels;
    try {
      reference_stains_ = macenko_stain_matrix(rgb);
      const auto c = stain_concentrations(rgb, reference_stains_).flatten(1);
      reference_max_ = torch::stack(
          {torch::quantile(c[0], 0.99, c10::nullopt), torch::quantile(c[1], 0.99, c10::nullopt)});
    } catch (const c10::Error&) {
      throw InputError(path + ": too little stained tissue to estimate a stain reference");
    }
  }
  std::set<std::string> labels;
  for (const auto& item : catalog.items()) {
    try {
      io::Slide slide(item.path, options_.fallback_microns_per_pixel());
      const auto map = map_tissue(slide, options_.tissue());
      const auto index = static_cast<int64_t>(slides_.size());
      slides_.push_back({item, map.grid_tiles});
      for (const auto& tile : map.tiles) tiles_.push_back({index, tile.x, tile.y});
      io::add_labels(item, labels);
      const auto& info = slide.info();
      const bool assumed = info.microns_per_pixel_from_config;
      notes_.push_back(
          {assumed ? io::DatasetNote::Severity::kWarning : io::DatasetNote::Severity::kDetail,
           item.path + ": " + std::to_string(map.tiles.size()) + " of " +
               std::to_string(map.grid_tiles) + " tiles kept as tissue (" +
               percent(static_cast<int64_t>(map.tiles.size()), map.grid_tiles) + "; " +
               std::to_string(map.grid_tiles - static_cast<int64_t>(map.tiles.size())) +
               " rejected as background), detected on level " + std::to_string(map.level) + ", " +
               std::to_string(info.microns_per_pixel_x) + " µm/px at level 0" +
               (assumed ? " (the fallback resolution: the slide states none)" : "")});
      if (!options_.thumbnail_dir().empty())
        save_thumbnail(options_.thumbnail_dir(), index, item.path, tissue_thumbnail(slide, map));
    } catch (const InputError& error) {
      if (options_.on_bad_file() == io::OnBadFile::kFail) throw;
      bad_slides_.push_back({error.what()});
    }
  }
  class_names_.assign(labels.begin(), labels.end());
  if (tiles_.empty())
    throw InputError("no tissue tiles in " + std::to_string(catalog.size()) + " slides (" +
                         std::to_string(bad_slides_.size()) + " bad" +
                         (bad_slides_.empty() ? "" : ", e.g. " + bad_slides_.front().message) +
                         "); lower the minimum tissue fraction (" +
                         std::to_string(options_.tissue().min_tissue_fraction()) +
                         ") or check the resolution (" +
                         std::to_string(options_.tissue().microns_per_pixel()) + " µm/px)",
                     "min_tissue_fraction");
}

void TileDatasetOptions::visit_fields(FieldVisitor& visit) {
  tissue_.visit_fields(visit);
  visit("fallback_microns_per_pixel", fallback_microns_per_pixel_, Check::at_least(0));
  visit("open_slides", open_slides_, Check::between(1, 4096));
  visit("stain_reference", stain_reference_);
}

std::shared_ptr<io::Slide> TileDataset::slide(int64_t index) const {
  const std::lock_guard<std::mutex> lock(open_mutex_);
  for (auto it = open_.begin(); it != open_.end(); ++it)
    if (it->first == index) {
      open_.splice(open_.begin(), open_, it);
      return it->second;
    }
  // Opening under the lock keeps two threads from opening the same slide twice; the handle is
  // then shared, and closed when the last reader lets go of it after eviction.
  auto opened = std::make_shared<io::Slide>(slides_[static_cast<size_t>(index)].item.path,
                                            options_.fallback_microns_per_pixel());
  open_.emplace_front(index, opened);
  while (static_cast<int64_t>(open_.size()) > std::max<int64_t>(1, options_.open_slides()))
    open_.pop_back();
  return opened;
}

io::Example TileDataset::get(int64_t index) const {
  const Tile& tile = tiles_.at(static_cast<size_t>(index));
  const auto& tissue = options_.tissue();
  const auto rgb =
      slide(tile.slide)->read_tile(tile.x, tile.y, tissue.microns_per_pixel(), tissue.tile_size());
  if (reference_stains_.defined()) {
    try {
      return {macenko_normalise(rgb, reference_stains_, reference_max_).div_(255), label_of(index)};
    } catch (const c10::Error&) {
      // Too little stain in this tile to estimate its stains: kept as scanned.
    }
  }
  // To [0, 1] in one pass: torch's conversion to float and division take three times as long.
  auto unit = torch::empty(rgb.sizes(), torch::kFloat32);
  const auto* in = rgb.data_ptr<uint8_t>();
  auto* out = unit.data_ptr<float>();
  for (int64_t i = 0; i < rgb.numel(); ++i) out[i] = in[i] * (1.0f / 255);
  return {unit, label_of(index)};
}

io::CatalogItem TileDataset::item(int64_t index) const {
  const Tile& tile = tiles_.at(static_cast<size_t>(index));
  const auto& slide = slides_[static_cast<size_t>(tile.slide)].item;
  auto item = slide;
  item.path += "#x=" + std::to_string(tile.x) + ",y=" + std::to_string(tile.y);
  return item;
}

std::string TileDataset::own_group(int64_t index, io::GroupBy by) const {
  if (by == io::GroupBy::kSlide) by = io::GroupBy::kFile;
  return io::Dataset::own_group(index, by);
}

std::string TileDataset::summary() const {
  int64_t grid = 0;
  for (const auto& s : slides_) grid += s.grid_tiles;
  return std::to_string(slides_.size()) + " slides, " + std::to_string(size()) +
         " tissue tiles of " + std::to_string(grid) + " (" + std::to_string(grid - size()) +
         " rejected as background)" +
         (bad_slides_.empty() ? ""
                              : "; skipped " + std::to_string(bad_slides_.size()) + " bad slides");
}

}  // namespace pretext::domains
