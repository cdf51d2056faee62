#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/modules/linear.h>

#include "base/fields.h"
#include "methods/masking.h"
#include "methods/method.h"
#include "methods/step_random.h"
#include "methods/vit.h"

namespace pretext::methods {

/// SimMIM (Xie et al. 2022): masked image modelling where the ViT encoder sees every patch, the
/// masked ones as a learnable mask token (MAE drops them instead), and one linear layer predicts
/// the raw pixels of each patch from the encoder's output; the loss is the L1 error on the
/// masked pixels only. Masks hide random mask_patch_size x mask_patch_size blocks (32 pixels in
/// the paper, a multiple of the ViT's patch), exactly ceil(ratio x blocks) of them per image,
/// as the reference's MaskGenerator.
///   SimMim simmim(vit, SimMimOptions().mask_ratio(0.6).mask_patch_size(8));
struct SimMimOptions {
  /// Fraction of the mask blocks hidden.
  TORCH_ARG(double, mask_ratio) = 0.6;
  /// Side of a mask block in pixels: a multiple of model.patch_size that divides
  /// model.image_size.
  TORCH_ARG(int64_t, mask_patch_size) = 32;

 public:
  void visit_fields(FieldVisitor& visit);
  /// The first field that does not fit the backbone, as {key, reason}.
  std::optional<std::pair<std::string, std::string>> mismatch(const std::string& backbone) const;
};

class SimMimImpl : public MethodImpl {
 public:
  /// Throws ConfigError unless `backbone` is a ViT without band groups whose sizes fit.
  SimMimImpl(std::shared_ptr<BackboneImpl> backbone, const SimMimOptions& options);
  /// One view; the masks of this step; the loss is `loss`'s.
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 1; }
  void after_optimizer_step(int64_t step, int64_t /*total_steps*/) override {
    mask_draws_.set_step(step);
  }
  std::shared_ptr<BackboneImpl> encoder() override { return vit_; }

  /// The predicted pixels of every patch, [B, N, p x p x C] in patchify's order, of `images`
  /// with the patches where `mask` [B, N] is 1 replaced by the mask token.
  torch::Tensor reconstruct(const torch::Tensor& images, const torch::Tensor& mask);
  /// The mean absolute error over the masked patches' pixels and bands of patches [B, N,
  /// p x p x bands]: the sum / max(masked pixels, 1) / bands, where the reference divides by
  /// masked pixels + 1e-5 (a relative difference below 1e-5 / masked pixels, and the same on
  /// any number of ranks, since every image hides the same count).
  static torch::Tensor masked_l1(const torch::Tensor& prediction, const torch::Tensor& target,
                                 const torch::Tensor& mask, int64_t bands);

 private:
  std::shared_ptr<ViTImpl> vit_;
  SimMimOptions options_;
  torch::Tensor mask_token_;
  torch::nn::Linear decoder_{nullptr};
  StepDraws mask_draws_;
};
TORCH_MODULE(SimMim);

}  // namespace pretext::methods
