#include "pipelines/data.h"

#include <algorithm>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "domains/scenes.h"
#include "domains/slices.h"
#include "domains/tiles.h"
#include "io/gdal_raster.h"
#include "io/slide.h"
#include "pipelines/run_dir.h"

namespace pretext::pipelines {
namespace {

constexpr size_t kBadFilesLogged = 20;

/// What every data set found while opening: its skipped files (the first few by name), its
/// notes (warnings on the console too, details in run.log only) and its summary.
void log_opened(const std::string& root, const io::Dataset& data, RunLog& log,
                const std::string& summary_tail = "") {
  const auto bad = data.bad_files();
  for (size_t i = 0; i < std::min(bad.size(), kBadFilesLogged); ++i)
    log.warn("skipped " + bad[i].message);
  if (bad.size() > kBadFilesLogged)
    log.warn("skipped " + std::to_string(bad.size() - kBadFilesLogged) + " more bad files");
  for (const auto& note : data.notes())
    if (note.severity == io::DatasetNote::Severity::kWarning)
      log.warn(note.text);
    else
      log.file_only(note.text);
  log.info(root + ": " + data.summary() + summary_tail);
}

// What band statistics were measured on: the same key reads them back from the run directory.
nlohmann::json statistics_key(const DataOptions& data) {
  const auto& scenes = data.scenes();
  return {{"root", data.root()},
          {"bands", data.bands()},
          {"band_names", scenes.band_names()},
          {"image_size", data.image_size()},
          {"ground_sample_distance", scenes.ground_sample_distance()},
          {"min_valid_fraction", scenes.min_valid_fraction()},
          {"statistics_windows", data.statistics_windows()},
          {"window_placement", name_of(scenes.placement())},
          {"fallback_nodata", scenes.fallback_nodata()},
          {"cloud_band", scenes.cloud_band()},
          {"cloud_values", scenes.cloud_values()}};
}

/// The band statistics of the pretraining data: read from the run directory when they were
/// measured on the same data, else measured and written there.
domains::BandStatistics band_statistics(const RunConfig& config,
                                        const domains::SceneDataset& scenes, RunLog& log) {
  const std::string path = RunDir(config.run.dir()).band_statistics();
  const auto key = statistics_key(config.data);
  if (auto statistics = domains::load_band_statistics(path, key)) {
    log.info("band statistics from " + path);
    return *statistics;
  }
  const auto statistics = scenes.measure_statistics(config.data.statistics_windows());
  domains::save_band_statistics(path, key, statistics);
  log.info("band statistics of " + std::to_string(statistics.windows) + " windows (" +
           std::to_string(statistics.pixels) + " valid pixels per band) written to " + path);
  return statistics;
}

PreparedData open_scenes(const RunConfig& config, const io::Catalog& catalog, DataUse use,
                         RunLog& log) {
  const bool pretraining = use == DataUse::kPretraining;
  io::set_gdal_cache_mb(config.data.gdal_cache_mb());
  auto scenes = std::make_shared<domains::SceneDataset>(
      catalog,
      config.data.scene_options(pretraining).seed(static_cast<uint64_t>(config.run.seed())));
  log_opened(config.data.root(), *scenes, log);
  const auto statistics = band_statistics(config, *scenes, log);
  scenes->set_statistics(statistics);
  // A band of one value has no spread to divide by: it is centred only.
  std::vector<double> spread = statistics.std;
  for (double& s : spread) s = s > 0 ? s : 1.0;
  auto augment = config.augment;
  augment.mean(statistics.mean).std(spread).frames(scenes->options().frames());
  return {std::move(scenes), std::move(augment)};
}

std::shared_ptr<io::Dataset> open_tiles(const RunConfig& config, const io::Catalog& catalog,
                                        DataUse use, RunLog& log) {
  const std::string thumbnails =
      use == DataUse::kPretraining ? RunDir(config.run.dir()).thumbnails() : "";
  auto tiles =
      std::make_shared<domains::TileDataset>(catalog, config.data.tile_options(thumbnails));
  log_opened(config.data.root(), *tiles, log,
             thumbnails.empty() ? "" : "; tissue thumbnails in " + thumbnails);
  return tiles;
}

/// DICOM files and volumes become slices; every other format is read as whole 2D images.
std::shared_ptr<io::Dataset> open_images(const RunConfig& config, const io::Catalog& catalog,
                                         DataUse use, RunLog& log) {
  std::string medical, flat;
  for (const auto& item : catalog.items()) {
    const auto format = io::detect_format(item.path);
    auto& example =
        (format == io::Format::kDicom || format == io::Format::kVolume) ? medical : flat;
    if (example.empty()) example = item.path;
  }
  if (!medical.empty() && !flat.empty())
    throw InputError(config.data.root() + ": mixes DICOM files or volumes (e.g. " + medical +
                     ") with 2D images (e.g. " + flat + "); give each its own data root");
  std::shared_ptr<io::Dataset> dataset;
  if (!medical.empty())
    dataset = std::make_shared<domains::SliceDataset>(
        catalog, config.data.slice_options(use == DataUse::kPretraining));
  else
    dataset = std::make_shared<io::ImageDataset>(catalog, config.data.image_options());
  log_opened(config.data.root(), *dataset, log);
  return dataset;
}

// The images pretraining uses: those of `data.split`, or all of them when it is empty. A
// catalog without any split (a PACS export, a plain folder) gives all its images to "train".
io::Catalog pretraining_images(const RunConfig& config, const io::Catalog& catalog, RunLog& log) {
  const std::string& split = config.data.split();
  if (split.empty()) return catalog;
  if (!catalog.has_splits()) {
    if (split != "train")
      throw InputError(config.data.root() + ": no images in split '" + split +
                       "' (the data has no train / val / test folders or split column)");
    log.info(config.data.root() + ": no train / val / test splits; all " +
             std::to_string(catalog.size()) + " images are used for split 'train'");
    return catalog;
  }
  auto images = catalog.with_split(split);
  if (images.size() == 0)
    throw InputError(config.data.root() + ": no images in split '" + split + "'");
  return images;
}

}  // namespace

PreparedData open_data(const RunConfig& config, DataUse use, RunLog& log) {
  const bool slides = config.data.kind() == DataKind::kSlides;
  auto catalog = io::Catalog::from_path(
      config.data.root(), slides ? std::function<bool(const std::string&)>(io::is_slide) : nullptr);
  if (catalog.skipped_files() > 0)
    log.info(config.data.root() + ": skipped " + std::to_string(catalog.skipped_files()) +
             " files that are not images");
  if (use == DataUse::kPretraining) catalog = pretraining_images(config, catalog, log);
  // Rasters are normalised by their measured band statistics, whatever augment.mean says.
  if (config.data.kind() == DataKind::kRasters) return open_scenes(config, catalog, use, log);
  PreparedData data{
      slides ? open_tiles(config, catalog, use, log) : open_images(config, catalog, use, log),
      config.augment};
  config.check_bands(data.bands());
  return data;
}

}  // namespace pretext::pipelines
