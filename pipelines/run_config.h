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
#include "pipelines/precision.h"
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
  /// What pretraining computes in: fp32, bf16 or fp16 (autocast; weights, optimiser state and
  /// running statistics stay fp32, see pipelines/precision.h). fp16 needs a CUDA device and
  /// scales the loss; bf16 also runs on the CPU (fast only on CPUs with bf16 instructions).
  TORCH_ARG(Precision, precision) = Precision::kFp32;
  /// On CUDA: TF32 tensor cores for fp32 matrix multiplies and convolutions (about 10 mantissa
  /// bits instead of 23) and cuDNN's benchmark mode, which picks convolution algorithms by timing
  /// them (PyTorch's allow_tf32 / cudnn.benchmark). No effect on the CPU.
  TORCH_ARG(bool, tf32) = true;
  /// Data-parallel jobs: the longest wait, in seconds, for the other ranks (joining, every
  /// collective, the checkpoint barrier); a rank that died ends the job within it.
  TORCH_ARG(int64_t, timeout_s) = 300;

 public:
  void visit_fields(FieldVisitor& visit);
};

/// What data.root holds.
///   kImages: image files, DICOM series and volumes, found by content;
///   kSlides: whole-slide images (everything OpenSlide reads), one example per tissue tile;
///   kRasters: multispectral scenes (GeoTIFF, COG, any GDAL raster), one example per window.
enum class DataKind { kImages, kSlides, kRasters };
inline const EnumNames<DataKind>& field_names(DataKind) {
  static const EnumNames<DataKind> names = {{"images", DataKind::kImages},
                                            {"slides", DataKind::kSlides},
                                            {"rasters", DataKind::kRasters}};
  return names;
}

/// The `data` section: which images, and how they become examples. The keys shared by every kind
/// of data are here; those of one kind are the fields of its dataset's Options, documented there
/// and read through their own visit_fields (one flat section in YAML):
///   whole images          io::ImageDatasetOptions      value_scale, cache_mb
///   DICOM and volumes     domains::SliceDatasetOptions slab, axis, body_threshold, ...
///   slides                domains::TileDatasetOptions  microns_per_pixel, stain_reference, ...
///   rasters               domains::SceneOptions        band_names, frames, window_placement, ...
struct DataOptions {
  /// A folder of images (recursive) or a CSV manifest path[,label][,split]. Relative paths are
  /// taken from the directory pretext runs in.
  TORCH_ARG(std::string, root) = "";
  TORCH_ARG(DataKind, kind) = DataKind::kImages;
  /// Side of the square example in pixels (the tile of a slide, the window of a raster).
  TORCH_ARG(int64_t, image_size) = 32;
  /// 1-based bands to read; empty reads all.
  TORCH_ARG(std::vector<int64_t>, bands) = {};
  /// Pretrain on this split only (train, val, test); empty (`--set data.split=`) uses every
  /// image. Data without any split (a PACS export, a plain folder) gives all its images to train.
  TORCH_ARG(std::string, split) = "";
  /// Reader threads and batches read ahead.
  TORCH_ARG(int64_t, workers) = 2;
  TORCH_ARG(int64_t, prefetch) = 4;
  /// A file that cannot be used (unreadable, no pixel data, inconsistent with its series, a
  /// duplicate slice, a slide without a resolution): "fail" stops the run naming it, "skip"
  /// leaves it out and counts it in the run log. Pretraining under "skip" also replaces a DICOM
  /// slice whose pixels turn out undecodable only when read (the scan reads headers).
  TORCH_ARG(io::OnBadFile, on_bad_file) = io::OnBadFile::kFail;
  TORCH_ARG(io::ImageDatasetOptions, images) = {};
  TORCH_ARG(domains::SliceDatasetOptions, slices) = {};
  TORCH_ARG(domains::TileDatasetOptions, tiles) = {};
  TORCH_ARG(domains::SceneOptions, scenes) = {};
  /// Rasters: invalid pixels take the band mean, and normalisation uses the per-band statistics
  /// measured on `statistics_windows` windows (cached in the run directory as band_stats.json).
  TORCH_ARG(int64_t, statistics_windows) = 256;
  /// GDAL's block cache in MiB (decoded blocks shared by all reads of the process).
  TORCH_ARG(int64_t, gdal_cache_mb) = 256;

 public:
  void visit_fields(FieldVisitor& visit);
  /// The options of each kind with the shared fields filled in.
  io::ImageDatasetOptions image_options() const;
  /// `pretraining`: with background rejection, and undecodable slices replaced under skip.
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
  /// As written; what only the data decides (rasters' band statistics, dates per example) is
  /// in the PreparedData that opening the data returns.
  domains::AugmentOptions augment;
  TrainerOptions train;
  EvalOptions eval;
  ProbeOptions probe;
  FinetuneOptions finetune;
  std::string backbone_name;
  std::shared_ptr<methods::BackboneSpec> backbone;
  /// model.sync_bn: on several data-parallel ranks every batch norm normalises by the statistics
  /// of the global batch (synchronised batch norm), so that N ranks compute what one process of
  /// the global batch does; false keeps each rank's own (the references' plain DDP, with BN
  /// statistics of B / N images). MoCo v2's shuffle-BN sub-batches always keep their own.
  bool sync_batch_norm = true;
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
