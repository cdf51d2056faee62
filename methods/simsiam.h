#pragma once

#include <memory>

#include <torch/arg.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/projection_head.h"

namespace pretext::methods {

/// SimSiam (Chen & He 2021): one network; a predictor on one view's projection regresses the
/// other view's projection held constant (stop-gradient), no momentum encoder, no negatives.
///   SimSiam simsiam(backbone, SimSiamOptions().projection_dim(2048));
struct SimSiamOptions {
  /// Projector: `projection_layers` Linear layers `projection_hidden_dim` wide with BN and ReLU,
  /// BN on the output too; predictor: Linear to `predictor_hidden_dim`, BN, ReLU, Linear back.
  TORCH_ARG(int64_t, projection_dim) = 2048;
  TORCH_ARG(int64_t, projection_hidden_dim) = 2048;
  TORCH_ARG(int64_t, projection_layers) = 3;
  TORCH_ARG(int64_t, predictor_hidden_dim) = 512;
  /// The predictor keeps the peak learning rate while the rest follows the schedule (the
  /// reference's --fix-pred-lr, in its pretraining command: a predictor that keeps adapting to
  /// the latest representations, the paper's section 4.2).
  TORCH_ARG(bool, fix_predictor_lr) = true;

 public:
  void visit_fields(FieldVisitor& visit);
};

class SimSiamImpl : public MethodImpl {
 public:
  SimSiamImpl(std::shared_ptr<BackboneImpl> backbone, const SimSiamOptions& options);
  /// Two views of the same images; the loss is -(cos(p1, z2) + cos(p2, z1)) / 2, in [-1, 1].
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  std::shared_ptr<BackboneImpl> encoder() override { return backbone_; }
  std::vector<torch::Tensor> constant_lr_parameters() override;

 private:
  bool fix_predictor_lr_;
  std::shared_ptr<BackboneImpl> backbone_;
  ProjectionHead projector_{nullptr}, predictor_{nullptr};
};

}  // namespace pretext::methods
