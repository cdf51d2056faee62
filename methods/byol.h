#pragma once

#include <torch/arg.h>

#include "base/fields.h"
#include "methods/momentum.h"

namespace pretext::methods {

/// BYOL (Grill et al. 2020): an online network with a predictor regresses the projection of the
/// other view by a target network, the online network's moving average; no negatives.
///   Byol byol(backbone, target_backbone, ByolOptions().projection_dim(256));
struct ByolOptions {
  /// Projector: Linear `projection_hidden_dim` wide, BN, ReLU, Linear to `projection_dim`; the
  /// predictor has the same shape, `predictor_hidden_dim` wide.
  TORCH_ARG(int64_t, projection_dim) = 256;
  TORCH_ARG(int64_t, projection_hidden_dim) = 4096;
  TORCH_ARG(int64_t, predictor_hidden_dim) = 4096;
  /// Target momentum at the start (the reference's tau_base); cosine schedule to 1.
  TORCH_ARG(double, momentum) = 0.99;

 public:
  void visit_fields(FieldVisitor& visit);
};

class ByolImpl : public MomentumMethodImpl {
 public:
  ByolImpl(std::shared_ptr<BackboneImpl> backbone, std::shared_ptr<BackboneImpl> target_backbone,
           const ByolOptions& options);
  /// Two views of the same images (two augmentations, or one place on two dates); the loss is
  /// the reference's 2 - 2 cos(prediction, target) summed over both directions.
  StepOutput step(const std::vector<torch::Tensor>& views) override;
};

}  // namespace pretext::methods
