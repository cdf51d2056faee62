#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pretext::pipelines {

/// One row of metrics.csv: a logged step of pretraining.
struct TrainingRow {
  int64_t step = 0, epoch = 0;
  double loss = 0.0;
  double lr = 0.0;
  double images_per_s = 0.0;  ///< smoothed throughput
};

/// metrics.csv's header line, without the newline: "step,epoch,loss,lr,images_per_s".
std::string training_csv_header();
/// A row as metrics.csv holds it, without the newline.
std::string to_csv(const TrainingRow& row);
/// The rows of a metrics.csv, each column found by its header name; empty when the file is
/// missing or empty. Throws InputError naming the file when a column is missing or a cell is not
/// a number.
std::vector<TrainingRow> read_training_rows(const std::string& path);

}  // namespace pretext::pipelines
