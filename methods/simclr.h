#pragma once

#include <torch/arg.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/projection_head.h"

namespace pretext::methods {

/// SimCLR: two views per image, a projection head, NT-Xent.
///   SimClr simclr(backbone, SimClrOptions().temperature(0.2).projection_dim(128));
struct SimClrOptions {
  /// Softmax temperature of NT-Xent.
  TORCH_ARG(double, temperature) = 0.2;
  /// Width of the projection the loss sees.
  TORCH_ARG(int64_t, projection_dim) = 128;
  /// Hidden width of the projection head; 0 uses the encoder's feature width.
  TORCH_ARG(int64_t, projection_hidden_dim) = 0;
  /// Linear layers in the projection head.
  TORCH_ARG(int64_t, projection_layers) = 2;

 public:
  void visit_fields(FieldVisitor& visit);
};

class SimClrImpl : public MethodImpl {
 public:
  SimClrImpl(std::shared_ptr<BackboneImpl> backbone, const SimClrOptions& options);
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  std::shared_ptr<BackboneImpl> encoder() override { return backbone_; }

 private:
  std::shared_ptr<BackboneImpl> backbone_;
  ProjectionHead projector_{nullptr};
  SimClrOptions options_;
};

}  // namespace pretext::methods
