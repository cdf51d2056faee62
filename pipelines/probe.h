#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>

#include "base/fields.h"
#include "pipelines/metrics.h"
#include "pipelines/optimizer_kind.h"

namespace pretext::pipelines {

/// The `probe` section: linear classifiers on frozen features. One learning rate and one weight
/// decay fix every hyper-parameter; several of either make a sweep, every combination trained at
/// once as one batch of heads over the same feature batches, the best chosen on validation.
///   train_probes(train, val, test, ProbeOptions().lr({1e-4, 1e-3, 1e-2}), seed);
struct ProbeOptions {
  TORCH_ARG(std::vector<double>, lr) = {1e-3};
  /// L2 penalty on the weights (not the biases), added to the gradient as torch.optim does.
  TORCH_ARG(std::vector<double>, weight_decay) = {0.0};
  TORCH_ARG(int64_t, epochs) = 30;
  TORCH_ARG(int64_t, batch_size) = 512;
  /// "adam" (betas 0.9, 0.999) or "sgd" (momentum 0.9).
  TORCH_ARG(OptimizerKind, optimizer) = OptimizerKind::kAdam;
  /// Standardise features with the training set's per-dimension mean and standard deviation.
  TORCH_ARG(bool, standardize) = true;

 public:
  void visit_fields(FieldVisitor& visit);
  int64_t heads() const { return static_cast<int64_t>(lr_.size() * weight_decay_.size()); }
};

/// Features [N, D] with int64 labels [N].
struct LabelledFeatures {
  at::Tensor features, labels;
};

struct ProbeHead {
  double lr = 0.0, weight_decay = 0.0;
  double val_top1 = 0.0;  ///< 0 when there is no validation set
  ClassificationMetrics test;
};

struct ProbeResult {
  std::vector<ProbeHead> heads;  ///< weight decay major, learning rate minor
  size_t chosen = 0;             ///< best validation top-1 (the first on ties)
  /// Every head's trained classifier, on standardised features when options.standardize():
  /// logits = features @ weights[h] + bias[h]; weights [H, D, C], bias [H, C].
  at::Tensor weights, bias;
};

/// Trains options.heads() linear heads on `train` (same initial weights and batch order, drawn
/// from `seed`), each with its own learning rate and weight decay, and scores them on `val`
/// (when given: features defined) and `test`. Labels are in [0, classes).
ProbeResult train_probes(const LabelledFeatures& train, const LabelledFeatures& val,
                         const LabelledFeatures& test, int64_t classes, const ProbeOptions& options,
                         uint64_t seed);

}  // namespace pretext::pipelines
