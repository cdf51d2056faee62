#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/arg.h>

#include "domains/augment.h"
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
  /// Pretrain on this split only (train, val, test); empty uses every image.
  TORCH_ARG(std::string, split) = "";
  /// Reader threads and batches read ahead.
  TORCH_ARG(int64_t, workers) = 2;
  TORCH_ARG(int64_t, prefetch) = 4;
  /// MiB of decoded examples kept in memory after their first read (0: none).
  TORCH_ARG(int64_t, cache_mb) = 0;

 public:
  void visit_fields(FieldVisitor& visit);
  io::ImageDatasetOptions dataset_options() const;
};

/// A whole run, read and checked from one config file before any work starts.
struct RunConfig {
  std::shared_ptr<ConfigFile> file;
  RunOptions run;
  DataOptions data;
  domains::AugmentOptions augment;
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
