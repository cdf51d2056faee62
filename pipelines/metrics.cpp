#include "pipelines/metrics.h"

#include <cstdio>
#include <sstream>

#include <torch/types.h>
#include <nlohmann/json.hpp>

namespace pretext::pipelines {

ClassificationMetrics classification_metrics(const torch::Tensor& scores,
                                             const torch::Tensor& labels) {
  TORCH_CHECK(scores.dim() == 2 && labels.dim() == 1 && scores.size(0) == labels.size(0),
              "classification_metrics: scores [N, C] and labels [N] expected");
  const int64_t classes = scores.size(1);
  const auto truth = labels.to(torch::kCPU, torch::kInt64);
  const auto predicted = scores.argmax(1).to(torch::kCPU, torch::kInt64);
  const auto confusion =
      torch::bincount(truth * classes + predicted, {}, classes * classes).view({classes, classes});

  ClassificationMetrics metrics;
  metrics.count = truth.size(0);
  const auto cells = confusion.accessor<int64_t, 2>();
  int64_t correct = 0, present = 0, scored = 0;
  double recall_sum = 0.0, f1_sum = 0.0;
  metrics.confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(classes, 0));
  for (int64_t c = 0; c < classes; ++c) {
    int64_t actual = 0, predictions = 0;
    for (int64_t j = 0; j < classes; ++j) {
      metrics.confusion[c][j] = cells[c][j];
      actual += cells[c][j];
      predictions += cells[j][c];
    }
    const int64_t hits = cells[c][c];
    correct += hits;
    if (actual > 0) {
      ++present;
      recall_sum += static_cast<double>(hits) / actual;
    }
    if (actual + predictions > 0) {
      ++scored;
      f1_sum += 2.0 * hits / (actual + predictions);  // 2TP / (2TP + FP + FN)
    }
  }
  if (metrics.count > 0) metrics.top1 = static_cast<double>(correct) / metrics.count;
  if (present > 0) metrics.balanced_accuracy = recall_sum / present;
  if (scored > 0) metrics.macro_f1 = f1_sum / scored;
  if (classes == 2) {
    const auto margin = scores.select(1, 1).to(torch::kCPU, torch::kFloat64) -
                        scores.select(1, 0).to(torch::kCPU, torch::kFloat64);
    metrics.auroc = auroc(margin, truth.eq(1));
  }
  return metrics;
}

std::optional<double> auroc(const torch::Tensor& scores, const torch::Tensor& positive) {
  const auto values = scores.to(torch::kCPU, torch::kFloat64).contiguous();
  const auto is_positive = positive.to(torch::kCPU, torch::kBool).contiguous();
  const int64_t n = values.size(0);
  const int64_t positives = is_positive.sum().item<int64_t>();
  const int64_t negatives = n - positives;
  // NaN scores (a diverged model) have no order.
  if (positives == 0 || negatives == 0 || values.isnan().any().item<bool>()) return std::nullopt;
  const auto order = values.argsort().contiguous();
  const auto* v = values.data_ptr<double>();
  const auto* o = order.data_ptr<int64_t>();
  const auto* p = is_positive.data_ptr<bool>();
  // Sum of the positives' 1-based ranks, tied values sharing their average rank.
  double rank_sum = 0.0;
  for (int64_t start = 0; start < n;) {
    int64_t end = start + 1;
    while (end < n && v[o[end]] == v[o[start]]) ++end;
    const double average_rank = 0.5 * static_cast<double>(start + 1 + end);
    for (int64_t i = start; i < end; ++i)
      if (p[o[i]]) rank_sum += average_rank;
    start = end;
  }
  const double u = rank_sum - 0.5 * static_cast<double>(positives) * (positives + 1);
  return u / (static_cast<double>(positives) * negatives);
}

namespace {

/// Average precision of one label's `scores` [N] (float64, contiguous) against `positive` [N].
std::optional<double> average_precision(const torch::Tensor& scores,
                                        const torch::Tensor& positive) {
  const int64_t n = scores.size(0);
  const int64_t positives = positive.sum().item<int64_t>();
  if (positives == 0 || scores.isnan().any().item<bool>()) return std::nullopt;
  const auto order = scores.argsort(/*dim=*/0, /*descending=*/true).contiguous();
  const auto* v = scores.data_ptr<double>();
  const auto* o = order.data_ptr<int64_t>();
  const auto* p = positive.data_ptr<bool>();
  // Each distinct score is a threshold; tied examples enter together.
  double area = 0.0, previous_recall = 0.0;
  int64_t hits = 0;
  for (int64_t start = 0; start < n;) {
    int64_t end = start;
    while (end < n && v[o[end]] == v[o[start]]) hits += p[o[end++]] ? 1 : 0;
    const double recall = static_cast<double>(hits) / positives;
    area += (recall - previous_recall) * static_cast<double>(hits) / static_cast<double>(end);
    previous_recall = recall;
    start = end;
  }
  return area;
}

}  // namespace

MultiLabelMetrics multi_label_metrics(const torch::Tensor& scores, const torch::Tensor& targets) {
  TORCH_CHECK(scores.dim() == 2 && scores.sizes() == targets.sizes(),
              "multi_label_metrics: scores and targets [N, C] expected");
  const auto values = scores.to(torch::kCPU, torch::kFloat64);
  const auto truth = targets.to(torch::kCPU).gt(0.5);
  const auto predicted = values.gt(0);
  MultiLabelMetrics metrics;
  metrics.count = scores.size(0);
  int64_t true_positives = 0, decisions = 0, scored = 0, ranked = 0;
  double f1_sum = 0.0, ap_sum = 0.0;
  for (int64_t c = 0; c < scores.size(1); ++c) {
    const auto actual = truth.select(1, c).contiguous();
    const auto guessed = predicted.select(1, c);
    const int64_t hits = (actual & guessed).sum().item<int64_t>();
    const int64_t both = actual.sum().item<int64_t>() + guessed.sum().item<int64_t>();
    true_positives += hits;
    decisions += both;
    if (both > 0) {
      ++scored;
      f1_sum += 2.0 * static_cast<double>(hits) / static_cast<double>(both);
    }
    metrics.average_precision.push_back(
        average_precision(values.select(1, c).contiguous(), actual));
    if (metrics.average_precision.back()) {
      ++ranked;
      ap_sum += *metrics.average_precision.back();
    }
  }
  if (decisions > 0) metrics.micro_f1 = 2.0 * static_cast<double>(true_positives) / decisions;
  if (scored > 0) metrics.macro_f1 = f1_sum / scored;
  if (ranked > 0) metrics.mean_average_precision = ap_sum / ranked;
  return metrics;
}

nlohmann::ordered_json to_json(const MultiLabelMetrics& metrics,
                               const std::vector<std::string>& classes) {
  nlohmann::ordered_json json;
  json["count"] = metrics.count;
  json["mean_average_precision"] = metrics.mean_average_precision;
  json["micro_f1"] = metrics.micro_f1;
  json["macro_f1"] = metrics.macro_f1;
  auto& per_label = json["average_precision"] = nlohmann::ordered_json::object();
  for (size_t c = 0; c < metrics.average_precision.size(); ++c) {
    const auto& ap = metrics.average_precision[c];
    per_label[classes.at(c)] = ap ? nlohmann::ordered_json(*ap) : nullptr;
  }
  return json;
}

MultiLabelMetrics multi_label_from_json(const nlohmann::json& json,
                                        const std::vector<std::string>& classes) {
  MultiLabelMetrics metrics;
  metrics.count = json.at("count").get<int64_t>();
  metrics.mean_average_precision = json.at("mean_average_precision").get<double>();
  metrics.micro_f1 = json.at("micro_f1").get<double>();
  metrics.macro_f1 = json.at("macro_f1").get<double>();
  for (const auto& label : classes) {
    const auto& ap = json.at("average_precision").at(label);
    metrics.average_precision.push_back(ap.is_null() ? std::nullopt
                                                     : std::optional<double>(ap.get<double>()));
  }
  return metrics;
}

nlohmann::ordered_json to_json(const ClassificationMetrics& metrics) {
  nlohmann::ordered_json json;
  json["count"] = metrics.count;
  json["top1"] = metrics.top1;
  json["balanced_accuracy"] = metrics.balanced_accuracy;
  json["macro_f1"] = metrics.macro_f1;
  json["auroc"] = metrics.auroc ? nlohmann::ordered_json(*metrics.auroc) : nullptr;
  json["confusion"] = metrics.confusion;
  return json;
}

ClassificationMetrics metrics_from_json(const nlohmann::json& json) {
  ClassificationMetrics metrics;
  metrics.count = json.at("count").get<int64_t>();
  metrics.top1 = json.at("top1").get<double>();
  metrics.balanced_accuracy = json.at("balanced_accuracy").get<double>();
  metrics.macro_f1 = json.at("macro_f1").get<double>();
  if (!json.at("auroc").is_null()) metrics.auroc = json.at("auroc").get<double>();
  metrics.confusion = json.at("confusion").get<std::vector<std::vector<int64_t>>>();
  return metrics;
}

std::string percent(double fraction) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%.2f%%", 100.0 * fraction);
  return buffer;
}

std::string metrics_line(const ClassificationMetrics& m) {
  return "top-1 " + percent(m.top1) + ", balanced accuracy " + percent(m.balanced_accuracy) +
         ", macro-F1 " + percent(m.macro_f1) + (m.auroc ? ", AUROC " + percent(*m.auroc) : "");
}

std::string metrics_line(const MultiLabelMetrics& m) {
  return "mAP " + percent(m.mean_average_precision) + ", micro-F1 " + percent(m.micro_f1) +
         ", macro-F1 " + percent(m.macro_f1);
}

std::string multi_label_csv_header(const std::string& prefix) {
  return prefix + "mean_average_precision," + prefix + "micro_f1," + prefix + "macro_f1";
}

std::string multi_label_csv(const MultiLabelMetrics& m) {
  std::ostringstream row;
  row << m.mean_average_precision << ',' << m.micro_f1 << ',' << m.macro_f1;
  return row.str();
}

std::string metrics_csv_header(const std::string& prefix) {
  return prefix + "top1," + prefix + "balanced_accuracy," + prefix + "macro_f1," + prefix + "auroc";
}

std::string metrics_csv(const ClassificationMetrics& m) {
  std::ostringstream row;
  row << m.top1 << ',' << m.balanced_accuracy << ',' << m.macro_f1 << ',';
  if (m.auroc) row << *m.auroc;
  return row.str();
}

}  // namespace pretext::pipelines
