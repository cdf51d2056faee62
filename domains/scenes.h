#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>
#include <nlohmann/json_fwd.hpp>

#include "io/acquisition_date.h"
#include "io/catalog.h"
#include "io/dataset.h"
#include "io/dicom.h"
#include "io/gdal_raster.h"

namespace pretext::domains {

/// Where a place's windows lie (SceneOptions::placement).
enum class WindowPlacement { kGrid, kRandom };
inline const EnumNames<WindowPlacement>& field_names(WindowPlacement) {
  static const EnumNames<WindowPlacement> names = {{"grid", WindowPlacement::kGrid},
                                                   {"random", WindowPlacement::kRandom}};
  return names;
}

/// How multispectral scenes (GeoTIFF, COG, any GDAL raster) become training windows.
///   SceneDataset scenes(catalog, SceneOptions().window_size(128).band_names({"B04", "B03"}));
struct SceneOptions {
  /// Window side in output pixels, read at `ground_sample_distance` map units per pixel (0: the
  /// file's own). Windows sit on a grid of their own size from the raster's origin, so with a
  /// window a multiple of the file's blocks each read decodes whole blocks once; sub-window
  /// randomness is the augmentation's random resized crop.
  TORCH_ARG(int64_t, window_size) = 256;
  TORCH_ARG(double, ground_sample_distance) = 0.0;
  /// "grid" (above) or "random": as many windows per place as the grid holds, at uniformly
  /// random pixel offsets drawn once from `seed` (reads then straddle blocks, decoding up to
  /// four times as much).
  TORCH_ARG(WindowPlacement, placement) = WindowPlacement::kGrid;
  TORCH_ARG(uint64_t, seed) = 0;
  /// 1-based bands, or band descriptions (e.g. B02, B03, B04, B08); both empty: all bands.
  TORCH_ARG(std::vector<int64_t>, bands) = {};
  TORCH_ARG(std::vector<std::string>, band_names) = {};
  /// Stored value meaning "no data" for files that declare neither nodata nor a mask (empty:
  /// every pixel of such files is valid).
  TORCH_ARG(std::vector<double>, fallback_nodata) = {};
  /// A cloud or scene-classification band (1-based; 0: none) and its values that make a pixel
  /// invalid (empty: any value but 0), e.g. Sentinel-2 SCL with [3, 8, 9, 10].
  TORCH_ARG(int64_t, cloud_band) = 0;
  TORCH_ARG(std::vector<double>, cloud_values) = {};
  /// A window is used only where at least this fraction of its pixels is valid on every date
  /// it is read from.
  TORCH_ARG(double, min_valid_fraction) = 0.9;
  /// Acquisition date: a manifest's date column first; else from the file name by this regular
  /// expression (its first group, e.g. "_(\d{8})T"), or "" for the metadata (ACQUISITION_DATE,
  /// TIFFTAG_DATETIME, ...).
  TORCH_ARG(std::string, date_pattern) = "";
  /// 1: every example is one window of one scene. 2 or more: the same window of the same place
  /// on `frames` dates, stacked along bands ([frames x C, S, S], oldest first), consecutive
  /// dates `min_gap_days` to `max_gap_days` apart and, when max_season_days > 0, at most that many
  /// days apart in the year (same season, other years), or at least min_season_days apart
  /// (different seasons, as Seasonal Contrast).
  TORCH_ARG(int64_t, frames) = 1;
  TORCH_ARG(int64_t, min_gap_days) = 1;
  TORCH_ARG(int64_t, max_gap_days) = 100000;
  TORCH_ARG(int64_t, min_season_days) = 0;
  TORCH_ARG(int64_t, max_season_days) = 0;
  /// Scenes are one place when a manifest's place column says so, or (without one) when their
  /// footprints (in WGS 84) overlap by at least this intersection over union; later dates are
  /// warped onto the earliest one's grid when their CRS or grid differ.
  TORCH_ARG(double, place_overlap) = 0.5;
  /// A scene that cannot be used: stop, or skip and list it.
  TORCH_ARG(io::OnBadFile, on_bad_file) = io::OnBadFile::kFail;

 public:
  /// What a config sets, placement as "window_placement" (window size, bands and on_bad_file
  /// are shared by every kind of data; the seed is the run's).
  void visit_fields(FieldVisitor& visit);
};

/// Per-band statistics of valid pixels (physical values, after scale and offset).
struct BandStatistics {
  std::vector<double> mean, std, p2, p98;
  int64_t windows = 0;  ///< windows streamed
  int64_t pixels = 0;   ///< valid pixels per band counted
};

/// Windows of a catalog's scenes (or of places seen on several dates), read on demand with
/// scale/offset applied. Invalid pixels (nodata, masked, outside a warped scene) are filled with
/// the band's mean from statistics() once they are set, 0 before: after normalisation they are
/// the mean, never a real-looking value such as 0 reflectance.
class SceneDataset : public io::Dataset {
 public:
  /// Opens every scene once (bands, dates, footprints, validity at a coarse resolution). Throws
  /// InputError naming the file under kFail, or when no window is valid.
  SceneDataset(const io::Catalog& catalog, SceneOptions options);

  int64_t size() const override { return static_cast<int64_t>(examples_.size()); }
  io::Example get(int64_t index) const override;
  int64_t channels() const override;
  const std::vector<std::string>& class_names() const override { return class_names_; }
  bool multi_label() const override { return multi_label_; }
  /// "scene.tif#x=512,y=256" (pixels of the scene's grid), dates joined by '|' for frames > 1.
  io::CatalogItem item(int64_t index) const override;
  /// Days since 1970-01-01 of each frame, oldest first; empty when a scene has no date.
  std::vector<int64_t> acquired_at(int64_t index) const override;

  /// Streams `windows` examples spread over the data set (a fixed stride, so the same ones every
  /// time) and measures their valid pixels.
  BandStatistics measure_statistics(int64_t windows) const;
  /// Sets the fill values for invalid pixels (the means).
  void set_statistics(const BandStatistics& statistics);
  /// One line per scene or place: windows kept and rejected, date, alignment.
  std::vector<io::DatasetNote> notes() const override { return notes_; }
  std::vector<io::BadFile> bad_files() const override { return bad_files_; }
  std::string summary() const override;

 protected:
  /// The place (kAuto, kPlace: every date of one footprint), or the scene file.
  std::string own_group(int64_t index, io::GroupBy by) const override;

 public:
  const SceneOptions& options() const { return options_; }
  /// The band names of an example, in order (descriptions, or "band N").
  const std::vector<std::string>& band_names() const { return band_names_; }
  /// Map coordinates (x, y) of the top-left corner of example `index` (its reference grid).
  std::array<double, 2> map_origin(int64_t index) const;

 private:
  struct Scene {
    io::CatalogItem item;
    io::Date date;
    bool dated = false;   // date found (always for frames > 1)
    bool warped = false;  // read through a warped VRT onto its place's reference grid
    int64_t place = 0;
    /// The first scene of its footprint (or manifest place), with or without frames: what
    /// evaluation groups by.
    int64_t same_place_as = 0;
  };
  struct Place {
    std::vector<int64_t> scenes;  // by date
    io::Grid grid;                // the earliest scene's
    bool georeferenced = false;
  };
  struct Example {
    int64_t x = 0, y = 0;         // window origin on the place's grid, native pixels
    std::vector<int64_t> scenes;  // one per frame
  };
  /// Where a scene lies, known while the data set is opened.
  struct Geometry {
    io::Grid grid;         // empty CRS: no georeference
    io::Bounds footprint;  // WGS 84
    double sample_distance = 0.0;
  };
  /// The bands to read of `raster`, checked against the first scene's.
  std::vector<int64_t> bands_of(const io::GdalRaster& raster, const std::string& path);
  /// Opens one scene (bands, date, georeference) and appends it; throws InputError naming it.
  Geometry add_scene(const io::CatalogItem& item);
  /// Groups the scenes into places (dates of one footprint).
  void group_places(const std::vector<Geometry>& geometry);
  /// Orders a place's dates, picks its reference grid and adds its valid windows.
  void map_place(int64_t place, const std::vector<Geometry>& geometry);
  std::shared_ptr<io::GdalRaster> open(int64_t scene) const;
  void add_place(int64_t place, const std::vector<at::Tensor>& valid_maps, int64_t cell);
  io::Region window(const Example& example) const;
  /// Window origins (native pixels) on a place's grid of width x height, by `placement`.
  std::vector<std::pair<int64_t, int64_t>> window_origins(int64_t place, int64_t width,
                                                          int64_t height) const;

  SceneOptions options_;
  std::vector<Scene> scenes_;
  std::vector<Place> places_;
  std::vector<Example> examples_;
  std::vector<int64_t> band_indices_;   // 1-based, in the order read
  io::RasterReadOptions read_options_;  // those bands, the fallback nodata
  std::vector<std::string> band_names_, class_names_;
  bool multi_label_ = false;
  std::vector<io::DatasetNote> notes_;
  std::vector<io::BadFile> bad_files_;
  std::vector<double> fill_;
  int64_t native_window_ = 0;  // window side in the files' own pixels
  std::string first_path_;     // the scene whose bands every other must have
  int64_t first_band_count_ = 0;
  int64_t rejected_ = 0;
  uint64_t id_ = 0;  // tells this data set's handles apart in the per-thread cache
};

/// Writes statistics as JSON with `key` (what they were measured on, as a JSON value); reads them
/// back only when the file's key equals it. Throws InputError naming the file when it cannot be
/// written.
void save_band_statistics(const std::string& path, const nlohmann::json& key,
                          const BandStatistics& statistics);
std::optional<BandStatistics> load_band_statistics(const std::string& path,
                                                   const nlohmann::json& key);

}  // namespace pretext::domains
