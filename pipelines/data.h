#pragma once

#include <cstdint>
#include <memory>

#include "domains/augment.h"
#include "io/dataset.h"
#include "pipelines/run_config.h"
#include "pipelines/run_log.h"

namespace pretext::pipelines {

/// The config's data as one command opened it: the data set, and how its examples are augmented
/// and normalised. Evaluation, export, fine-tuning and the report's figures take the
/// preprocessing from here, never from the config, which nothing writes into after loading.
struct PreparedData {
  std::shared_ptr<io::Dataset> dataset;
  /// The config's augment section, with what only the data decides: for rasters the per-band
  /// mean and std measured on the pretraining data (std 1 for a band of one value), and the
  /// dates per example (data.frames when pretraining, else 1).
  domains::AugmentOptions augment;

  /// Bands of one date: the encoder's input (the data set stacks augment.frames() dates).
  int64_t bands() const { return dataset->channels() / augment.frames(); }
};

/// Whether the data is opened to pretrain on (data.split, background rejection, tissue
/// thumbnails, data.frames dates per example) or to evaluate and export (every labelled image).
enum class DataUse { kPretraining, kEvaluation };

/// Opens the config's data set once: whole 2D images, the slices of DICOM series and volumes,
/// the tissue tiles of slides, or raster windows; logs its summary, skipped files and notes;
/// checks the bands against the normalisation. Throws InputError / ConfigError.
PreparedData open_data(const RunConfig& config, DataUse use, RunLog& log);

}  // namespace pretext::pipelines
