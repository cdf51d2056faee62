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
  /// "cosine" (from each head's lr to 0 over the epochs, as DINO's eval_linear) or "constant".
  TORCH_ARG(LrSchedule, schedule) = LrSchedule::kCosine;
  /// Standardise features with the training set's per-dimension mean and standard deviation.
  TORCH_ARG(bool, standardize) = true;

 public:
  void visit_fields(FieldVisitor& visit);
  int64_t heads() const { return static_cast<int64_t>(lr_.size() * weight_decay_.size()); }
};

/// Features [N, D] with int64 labels [N], or for multi-label probes float32 multi-hot `targets`
/// [N, C] (then the labels are not used).
struct LabelledFeatures {
  at::Tensor features, labels;
  at::Tensor targets = {};
};

struct ProbeHead {
  double lr = 0.0, weight_decay = 0.0;
  /// What a sweep chooses on: validation top-1, or mean average precision for multi-label
  /// targets; 0 when there is no validation set.
  double val_score = 0.0;
  ClassificationMetrics test;     ///< one label per example
  MultiLabelMetrics multi_label;  ///< multi-label targets (`test` is then empty)
};

struct ProbeResult {
  bool multi_label = false;      ///< trained on multi-label targets: one sigmoid per label
  std::vector<ProbeHead> heads;  ///< weight decay major, learning rate minor
  size_t chosen = 0;             ///< best validation score (the first on ties)
  /// Every head's trained classifier, on standardised features when options.standardize():
  /// logits = features @ weights[h] + bias[h]; weights [H, D, C], bias [H, C].
  at::Tensor weights, bias;
};

/// The factor on the learning rate in epoch `epoch` (0-based) of `epochs` under `schedule`:
/// (1 + cos(pi * epoch / epochs)) / 2 for cosine.
double lr_factor(LrSchedule schedule, int64_t epoch, int64_t epochs);

/// Trains options.heads() linear heads on `train` (same initial weights and batch order, drawn
/// from `seed`), each with its own learning rate and weight decay, and scores them on `val`
/// (when given: features defined) and `test`. Labels are in [0, classes). With targets (multi-
/// label), each head is `classes` logistic regressions (binary cross-entropy of one sigmoid per
/// label, averaged over labels and examples as torch's BCEWithLogitsLoss). Trains on `device`
/// (the run's); the result's tensors are on the CPU.
ProbeResult train_probes(const LabelledFeatures& train, const LabelledFeatures& val,
                         const LabelledFeatures& test, int64_t classes, const ProbeOptions& options,
                         uint64_t seed, const c10::Device& device = c10::kCPU);

}  // namespace pretext::pipelines
