#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <nlohmann/json_fwd.hpp>

namespace pretext::pipelines {

/// How well predicted classes match the truth, with the numbers a clinical or remote-sensing
/// reader asks for beyond accuracy: class imbalance (balanced accuracy, macro-F1) and, for binary
/// tasks, the ranking quality of the scores (AUROC).
struct ClassificationMetrics {
  int64_t count = 0;               ///< examples scored
  double top1 = 0.0;               ///< fraction predicted right
  double balanced_accuracy = 0.0;  ///< mean recall over the classes present in the truth
  double macro_f1 = 0.0;  ///< mean F1 over the classes present in the truth or the predictions
  std::optional<double> auroc;  ///< area under the ROC curve of class 1's score, binary tasks only
  std::vector<std::vector<int64_t>> confusion;  ///< [true class][predicted class] counts
};

/// Metrics of `scores` [N, C] (logits, probabilities or votes: the prediction is the arg-max)
/// against `labels` [N] (int64 in [0, C)). For C == 2 the AUROC ranks examples by
/// scores[:, 1] - scores[:, 0], which orders them like the softmax probability of class 1.
ClassificationMetrics classification_metrics(const at::Tensor& scores, const at::Tensor& labels);

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half (Mann-Whitney U with average ranks). nullopt when either
/// class is absent or a score is NaN.
std::optional<double> auroc(const at::Tensor& scores, const at::Tensor& positive);

/// How well scores of several labels per example match the truth (BigEarthNet-style scenes,
/// findings of a chest X-ray): the ranking of each label's scores (average precision) and the
/// decisions at probability 0.5.
struct MultiLabelMetrics {
  int64_t count = 0;  ///< examples scored
  /// Per label (class order): sklearn's average_precision_score of its scores, the sum over
  /// distinct score thresholds of (R_n - R_n-1) * P_n; nullopt when the label has no positive
  /// example (or a score is NaN).
  std::vector<std::optional<double>> average_precision;
  double mean_average_precision = 0.0;  ///< mean over the labels that have an average precision
  /// F1 of the decisions score > 0 (a logit's probability 0.5): micro over every (example,
  /// label) decision; macro the mean over labels present in the truth or the predictions.
  double micro_f1 = 0.0, macro_f1 = 0.0;
};

/// Metrics of `scores` [N, C] (logits: a label is predicted where its score > 0) against
/// `targets` [N, C] (1 where the example has the label, else 0).
MultiLabelMetrics multi_label_metrics(const at::Tensor& scores, const at::Tensor& targets);

/// "81.25%": a fraction as a percentage with two decimals, for logs and reports.
std::string percent(double fraction);
/// "top-1 81.25%, balanced accuracy ..., macro-F1 ..., AUROC ...", for the run log.
std::string metrics_line(const ClassificationMetrics& metrics);
/// The CSV columns of metrics_csv, each name after `prefix`: "top1,balanced_accuracy,...".
std::string metrics_csv_header(const std::string& prefix = "");
/// "0.8125,0.8,0.79,0.9" (AUROC empty when there is none).
std::string metrics_csv(const ClassificationMetrics& metrics);

/// "mAP 81.25%, micro-F1 ..., macro-F1 ...", for the run log.
std::string metrics_line(const MultiLabelMetrics& metrics);
/// The CSV columns of multi_label_csv after `prefix`: "mean_average_precision,micro_f1,macro_f1".
std::string multi_label_csv_header(const std::string& prefix = "");
std::string multi_label_csv(const MultiLabelMetrics& metrics);

/// {"count": ..., "top1": ..., ..., "confusion": [[...]]} for metric files and reports.
nlohmann::ordered_json to_json(const ClassificationMetrics& metrics);
/// Reads back what to_json wrote (other keys of `json` are ignored).
ClassificationMetrics metrics_from_json(const nlohmann::json& json);
/// {"count": ..., "mean_average_precision": ..., "micro_f1": ..., "macro_f1": ...,
///  "average_precision": {label: AP or null}} with the labels `classes` (one per column).
nlohmann::ordered_json to_json(const MultiLabelMetrics& metrics,
                               const std::vector<std::string>& classes);
/// Reads back what to_json wrote, the labels in `classes` order. Throws
/// nlohmann::json::exception when a label is missing.
MultiLabelMetrics multi_label_from_json(const nlohmann::json& json,
                                        const std::vector<std::string>& classes);

}  // namespace pretext::pipelines
