#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

#include "pipelines/evaluation.h"
#include "pipelines/metrics.h"

namespace pretext::pipelines {

struct KnnScore {
  int64_t k = 0;
  ClassificationMetrics metrics;  ///< of the weighted vote against the queries' labels
};

/// k-NN classification for every k of `options`: cosine similarity between L2-normalised
/// features, the k most similar bank entries vote with weight exp(sim / temperature), as in
/// InstDisc and DINO. Labels are int64 class indices in [0, classes). The similarities are
/// computed on `device` (the run's).
///   knn_classify(train, train_labels, test, test_labels, EvalOptions().k({10, 20}), classes);
std::vector<KnnScore> knn_classify(const at::Tensor& bank, const at::Tensor& bank_labels,
                                   const at::Tensor& queries, const at::Tensor& query_labels,
                                   const EvalOptions& options, int64_t classes,
                                   const c10::Device& device = c10::kCPU);

}  // namespace pretext::pipelines
