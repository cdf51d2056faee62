#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "domains/augment.h"
#include "domains/scenes.h"
#include "domains/slices.h"
#include "domains/tiles.h"
#include "io/dataset.h"
#include "methods/registry.h"
#include "pipelines/config.h"
#include "pipelines/evaluation.h"
#include "pipelines/finetune.h"
#include "pipelines/probe.h"
#include "pipelines/trainer.h"

namespace pretext::pipelines {

/// The `run` section: where a run writes and how it computes.
struct RunOptions {
  /// Run directory: resolved config, log, metrics.csv, checkpoints.
  TORCH_ARG(std::string, dir) = "runs/default";
  /// Seeds weights, data order and augmentation.
  TORCH_ARG(int64_t, seed) = 0;
  /// LibTorch intra-op threads; 0 uses every core.
  TORCH_ARG(int64_t, threads) = 0;
  /// "cpu", "cuda" or "cuda:N".
  TORCH_ARG(std::string, device) = "cpu";

 public:
  void visit_fields(FieldVisitor& visit);
};

/// The `data` section: which images, and how they become examples.
struct DataOptions {
  /// A folder of images (recursive) or a CSV manifest path[,label][,split]. Relative paths are
  /// taken from the directory pretext runs in.
  TORCH_ARG(std::string, root) = "";
  /// Side of the square example in pixels.
  TORCH_ARG(int64_t, image_size) = 32;
  /// 1-based bands to read; empty reads all.
  TORCH_ARG(std::vector<int64_t>, bands) = {};
  /// Multiplies stored values; 0 divides by the data type's full scale (255 for uint8).
  TORCH_ARG(double, value_scale) = 0.0;
  /// Pretrain on this split only (train, val, test); empty (`--set data.split=`) uses every
  /// image. Data without any split (a PACS export, a plain folder) gives all its images to train.
  TORCH_ARG(std::string, split) = "";
  /// Reader threads and batches read ahead.
  TORCH_ARG(int64_t, workers) = 2;
  TORCH_ARG(int64_t, prefetch) = 4;
  /// MiB of decoded examples kept in memory after their first read (0: none).
  TORCH_ARG(int64_t, cache_mb) = 0;
  /// DICOM series and volumes (NIfTI / NRRD / MetaImage): adjacent slices stacked as channels
  /// (2.5D, odd), the volume axis to slice along (0: k), and background rejection while
  /// pretraining: a slice whose fraction of pixels above `body_threshold` (Hounsfield units for
  /// CT) is under `min_body_fraction` is replaced (0 keeps every slice).
  TORCH_ARG(int64_t, slab) = 1;
  TORCH_ARG(int64_t, axis) = 0;
  TORCH_ARG(double, body_threshold) = -500.0;
  TORCH_ARG(double, min_body_fraction) = 0.0;
  /// A DICOM file that cannot be used (unreadable, no pixel data, inconsistent with its series,
  /// a duplicate slice): "fail" stops the run naming it, "skip" leaves it out and counts it in the
  /// run log. Pretraining under "skip" also replaces a DICOM slice whose pixels turn out
  /// undecodable only when read (the scan reads headers), counting it in the run log.
  TORCH_ARG(std::string, on_bad_file) = "fail";
  /// "images": image files, DICOM series and volumes, found by content; "slides": whole-slide
  /// images (everything OpenSlide reads), one example per tissue tile of data.image_size pixels
  /// at `microns_per_pixel`, kept where at least `min_tissue_fraction` of it is tissue.
  TORCH_ARG(std::string, kind) = "images";
  TORCH_ARG(double, microns_per_pixel) = 0.5;
  TORCH_ARG(double, min_tissue_fraction) = 0.5;
  /// Slides that state no µm per pixel are read at this value (with a warning); 0 skips or fails
  /// them per on_bad_file.
  TORCH_ARG(double, fallback_microns_per_pixel) = 0.0;
  /// Slides open at once; each OpenSlide handle keeps its own tile cache.
  TORCH_ARG(int64_t, open_slides) = 16;
  /// An RGB image of well-stained H&E; tiles are Macenko-normalised to its stains ("": none).
  TORCH_ARG(std::string, stain_reference) = "";
  /// "rasters": multispectral scenes (GeoTIFF, COG, any GDAL raster), one example per window of
  /// data.image_size pixels at `ground_sample_distance` map units per pixel (0: the files' own),
  /// kept where at least `min_valid_fraction` of it is valid (not nodata, not masked). Bands by
  /// number (data.bands) or by description (`band_names`); `fallback_nodata`: the "no data"
  /// value of files that declare none. Values are physical (scale and offset applied); invalid
  /// pixels take the band mean, and normalisation uses the per-band statistics measured on
  /// `statistics_windows` windows (cached in the run directory as band_stats.json).
  TORCH_ARG(double, ground_sample_distance) = 0.0;
  TORCH_ARG(std::vector<std::string>, band_names) = {};
  TORCH_ARG(std::vector<double>, fallback_nodata) = {};
  /// A cloud or classification band (1-based; 0: none) and the values of it that make a pixel
  /// invalid (empty: any value but 0), e.g. Sentinel-2 SCL: [3, 8, 9, 10].
  TORCH_ARG(int64_t, cloud_band) = 0;
  TORCH_ARG(std::vector<double>, cloud_values) = {};
  TORCH_ARG(double, min_valid_fraction) = 0.9;
  /// "grid": windows on a grid of their own size from each raster's origin (reads decode whole
  /// blocks once); "random": as many windows at random offsets drawn once from run.seed.
  TORCH_ARG(std::string, window_placement) = "grid";
  TORCH_ARG(int64_t, statistics_windows) = 256;
  /// Acquisition dates from file names by this regular expression ("" reads the metadata).
  TORCH_ARG(std::string, date_pattern) = "";
  /// Temporal pretraining: `frames` dates of one place per example (2: a positive pair), dates
  /// `min_gap_days` to `max_gap_days` apart, within `max_season_days` of each other in the year
  /// or at least `min_season_days` apart (0: either way). Scenes are one place when their
  /// footprints overlap by `place_overlap` (intersection over union).
  TORCH_ARG(int64_t, frames) = 1;
  TORCH_ARG(int64_t, min_gap_days) = 1;
  TORCH_ARG(int64_t, max_gap_days) = 100000;
  TORCH_ARG(int64_t, min_season_days) = 0;
  TORCH_ARG(int64_t, max_season_days) = 0;
  TORCH_ARG(double, place_overlap) = 0.5;
  /// GDAL's block cache in MiB (decoded blocks shared by all reads of the process).
  TORCH_ARG(int64_t, gdal_cache_mb) = 256;

 public:
  void visit_fields(FieldVisitor& visit);
  io::ImageDatasetOptions dataset_options() const;
  /// `pretraining`: with background rejection.
  domains::SliceDatasetOptions slice_options(bool pretraining) const;
  /// `thumbnail_dir`: where tissue thumbnails go ("" for none).
  domains::TileDatasetOptions tile_options(const std::string& thumbnail_dir) const;
  /// `pretraining`: with data.frames dates per example (1 otherwise).
  domains::SceneOptions scene_options(bool pretraining) const;
};

/// A whole run, read and checked from one config file before any work starts.
struct RunConfig {
  std::shared_ptr<ConfigFile> file;
  RunOptions run;
  DataOptions data;
  /// Mutable for one reason: with data.kind rasters, opening the data sets its per-band mean
  /// and std from the measured band statistics, and its frames from data.frames.
  mutable domains::AugmentOptions augment;
  TrainerOptions train;
  EvalOptions eval;
  ProbeOptions probe;
  FinetuneOptions finetune;
  std::string backbone_name;
  std::shared_ptr<methods::BackboneSpec> backbone;
  std::string method_name;
  std::shared_ptr<methods::MethodSpec> method;

  /// The method with a freshly initialised backbone for images of `in_channels` bands; weights
  /// are drawn from the run seed.
  std::shared_ptr<methods::MethodImpl> build_method(int64_t in_channels) const;
  /// Checks that the normalisation has one value or one per band. Throws ConfigError.
  void check_bands(int64_t channels) const;
};

/// Reads and checks every section. Throws ConfigError naming file, line and key.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);
RunConfig parse_run_config(const std::string& text, const std::string& name,
                           const std::vector<std::string>& overrides = {});

}  // namespace pretext::pipelines
