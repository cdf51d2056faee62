#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/arg.h>

#include "base/fields.h"
#include "methods/dino.h"
#include "methods/masking.h"
#include "methods/method.h"
#include "methods/momentum.h"
#include "methods/step_random.h"
#include "methods/vit.h"

namespace pretext::methods {

/// iBOT (Zhou et al. 2022): DINO's self-distillation of the class token across crops, plus masked
/// image modelling as self-distillation of patch tokens: the student sees each global crop with
/// blocks of patches replaced by a mask token, the teacher the whole crop, and the student's
/// output at each masked patch matches the teacher's there (a patch-level head and centre).
///   Ibot ibot(student_vit, teacher_vit, IbotOptions());
struct IbotOptions {
  IbotOptions();
  /// DINO's keys for the class token (head, temperatures, momenta, centre, local crops,
  /// DINOv2's centering and KoLeo); iBOT's defaults: out_dim 8192, 10 local crops.
  TORCH_ARG(DinoOptions, dino);
  /// Prototypes of the patch head; with shared_head the class token's last layer serves the
  /// patches too (the iBOT ViT recipes' --shared_head true) and patch_out_dim must be out_dim.
  TORCH_ARG(int64_t, patch_out_dim) = 8192;
  TORCH_ARG(bool, shared_head) = true;
  /// Teacher temperature for the patches, from warmup_teacher_patch_temp over
  /// dino.warmup_teacher_steps, and the patch centre's momentum.
  TORCH_ARG(double, teacher_patch_temp) = 0.07;
  TORCH_ARG(double, warmup_teacher_patch_temp) = 0.04;
  TORCH_ARG(double, patch_center_momentum) = 0.9;
  /// Weights of the class-token and the patch losses (the paper's lambda1, lambda2).
  TORCH_ARG(double, cls_weight) = 1.0;
  TORCH_ARG(double, patch_weight) = 1.0;
  /// Masks: each global crop of an image is masked with probability masked_images (the
  /// recipes' --pred_ratio 0 0.3: half the images), a fraction of its patches uniform in
  /// [mask_ratio - mask_ratio_var, mask_ratio + mask_ratio_var], in blocks as BEiT's masking
  /// generator (aspect ratios in [mask_aspect_ratio, 1 / mask_aspect_ratio]).
  TORCH_ARG(double, masked_images) = 0.5;
  TORCH_ARG(double, mask_ratio) = 0.3;
  TORCH_ARG(double, mask_ratio_var) = 0.2;
  TORCH_ARG(double, mask_aspect_ratio) = 0.3;

 public:
  void visit_fields(FieldVisitor& visit);
  /// The first field that does not fit the others or the backbone, as {key, reason}.
  std::optional<std::pair<std::string, std::string>> mismatch(const std::string& backbone) const;
};

class IbotImpl : public MethodImpl {
 public:
  /// Throws ConfigError unless both backbones are ViTs with a class token pooled as "cls".
  IbotImpl(std::shared_ptr<BackboneImpl> student, std::shared_ptr<BackboneImpl> teacher,
           const IbotOptions& options);
  /// views: 2 global crops then dino.local_crops local ones.
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 2 + options_.dino().local_crops(); }
  int64_t global_view_count() const override { return 2; }
  void after_optimizer_step(int64_t step, int64_t total_steps) override;
  std::shared_ptr<BackboneImpl> encoder() override { return teacher_; }
  void sync_encoder_copies() override;

  /// The masks of both global crops of this step's images, [2, B, grid x grid] (crop-major),
  /// drawn for the global batch (batch_slice()).
  torch::Tensor masks(int64_t batch, int64_t grid, at::Generator generator) const;
  /// iBOT's patch loss: per global crop and image, the cross-entropy of the teacher's patch
  /// targets [2B, N, K] against the student's patch logits [2B, N, K] / student_temp, averaged
  /// over the image's masked patches (none: 0), then over images and crops.
  static torch::Tensor patch_loss(const torch::Tensor& student, const torch::Tensor& targets,
                                  const torch::Tensor& mask, double student_temp);
  const torch::Tensor& center() const { return center_; }
  const torch::Tensor& patch_center() const { return patch_center_; }

 private:
  /// Class-token features [B, D] and patch tokens [B, N, D] after the final norm.
  std::pair<torch::Tensor, torch::Tensor> tokens(ViTImpl& vit, const torch::Tensor& images,
                                                 const torch::Tensor& mask);
  IbotOptions options_;
  std::shared_ptr<ViTImpl> student_, teacher_;
  DinoHead student_head_{nullptr}, teacher_head_{nullptr};
  torch::Tensor mask_token_, center_, patch_center_;
  MomentumPairs momentum_pairs_;
  StepDraws mask_draws_;
};

}  // namespace pretext::methods
