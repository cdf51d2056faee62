#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/arg.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/projection_head.h"

namespace pretext::methods {

/// Rotation prediction (RotNet, Gidaris et al. 2018): every image turned by 0, 90, 180 and 270
/// degrees, all four in the same batch as the paper found best, and a classifier on the encoder's
/// features names the turn. It needs images with an "up": on slides and satellite scenes, whose
/// content has no canonical orientation, every turn is as plausible as the others and the task
/// can only be solved from artefacts (scanner or sensor stripes, sun shadows), so it is a weak
/// task there.
///   Rotation rotnet(backbone, RotationOptions().head_hidden_dim(0));
struct RotationOptions {
  /// The classifier: a Linear from the features (0), or Linear-BN-ReLU of this width then Linear.
  TORCH_ARG(int64_t, head_hidden_dim) = 0;

 public:
  void visit_fields(FieldVisitor& visit);
};

/// Images [B, C, S, S] turned counter-clockwise by k quarter turns for k = 0..3 in turn:
/// [4B, C, S, S], the B images at 0 degrees first.
torch::Tensor four_rotations(const torch::Tensor& images);

class RotationImpl : public MethodImpl {
 public:
  RotationImpl(std::shared_ptr<BackboneImpl> backbone, const RotationOptions& options);
  /// One view of square images; the loss is the cross-entropy of the four turns' labels over
  /// the 4B rotated images.
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 1; }
  std::shared_ptr<BackboneImpl> encoder() override { return backbone_; }

 private:
  std::shared_ptr<BackboneImpl> backbone_;
  ProjectionHead head_{nullptr};
};
TORCH_MODULE(Rotation);

}  // namespace pretext::methods
