#pragma once

// What knn, probe and finetune write (knn.json, probe.json, finetune.json), and pretraining's
// figures (figures.json), that the report reads back: one struct each, with the JSON conversion
// both sides use.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "pipelines/finetune.h"
#include "pipelines/knn.h"
#include "pipelines/metrics.h"

namespace pretext::pipelines {

/// Examples in each part of an evaluation split.
struct SplitCounts {
  int64_t train = 0, val = 0, test = 0;
};

/// knn.json: every k's scores of one encoder on the test split.
struct KnnRecord {
  std::string encoder;  ///< what was scored: a checkpoint, "random init", a feature file
  SplitCounts examples;
  double temperature = 0.0;
  std::vector<std::string> classes;
  std::vector<KnnScore> results;
  SplitCounts groups;  ///< patients, slides, places, ... in each part (eval.group_by)
};

/// probe.json: the linear probe chosen (on validation when there was a sweep) and its test scores.
struct ProbeRecord {
  std::string encoder;
  SplitCounts examples;
  std::vector<std::string> classes;
  double lr = 0.0, weight_decay = 0.0;
  /// The choice's validation score (top-1; mean average precision for multi-label targets);
  /// none without a sweep.
  std::optional<double> val_score;
  /// Test scores for one label per example (empty when multi_label is set).
  ClassificationMetrics test;
  SplitCounts groups;
  /// Test scores for several labels per example.
  std::optional<MultiLabelMetrics> multi_label = std::nullopt;
};

/// finetune.json: every seed's test scores, their mean and sample standard deviation.
struct FinetuneRecord {
  /// Summary numbers over seeds.
  struct Spread {
    double top1 = 0.0, balanced_accuracy = 0.0, macro_f1 = 0.0;
  };
  std::string encoder;
  SplitCounts examples;
  std::vector<std::string> classes;
  std::vector<FinetuneSeedResult> seeds;
  Spread mean, std;  ///< std: sample standard deviation, 0 for a single seed
  SplitCounts groups;

  /// Fills mean and std from the seeds.
  void summarise();
};

/// What one PNG of the run directory (RunDir names it) shows.
struct Figure {
  std::string caption;  ///< plain text
  int64_t width = 0;    ///< display width in CSS pixels (small images drawn larger)
};

/// figures.json: what pretraining drew from its own data and encoder, for the report to show
/// without opening the data again.
struct FiguresRecord {
  Figure views;
  std::optional<Figure> attention;  ///< a ViT's attention maps; none for other encoders
};

nlohmann::ordered_json to_json(const KnnRecord& record);
nlohmann::ordered_json to_json(const ProbeRecord& record);
nlohmann::ordered_json to_json(const FinetuneRecord& record);
/// Read back what to_json wrote; throw nlohmann::json::exception on anything else.
KnnRecord knn_record(const nlohmann::json& json);
ProbeRecord probe_record(const nlohmann::json& json);
FinetuneRecord finetune_record(const nlohmann::json& json);
nlohmann::ordered_json to_json(const FiguresRecord& record);
FiguresRecord figures_record(const nlohmann::json& json);

/// Writes `json` (indented) to `path` atomically. Throws InputError naming the file.
void save_json(const std::string& path, const nlohmann::ordered_json& json);

}  // namespace pretext::pipelines
