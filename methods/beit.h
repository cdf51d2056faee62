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
#include "methods/method.h"
#include "methods/step_random.h"
#include "methods/vit.h"
#include "methods/vqvae.h"

namespace pretext::methods {

/// BEiT (Bao et al. 2022): masked image modelling that predicts discrete visual tokens. A
/// frozen tokenizer turns each patch of the view into one of its codebook's entries; the ViT
/// sees the view with blocks of about 40% of the patches replaced by a learned mask token
/// (BEiT's blockwise masking), and a linear head over the codebook predicts the token of every
/// masked patch; the loss is the cross-entropy over the masked patches of the batch. The
/// tokenizer is a vqvae run of pretext's own (DALL-E's dVAE in the paper).
///   Beit beit(vit, tokenizer, BeitOptions().mask_ratio(0.4));
struct BeitOptions {
  /// The checkpoint of a vqvae run (pretext pretrain with method.name: vqvae) on views
  /// normalised alike, whose ViT has the same patch grid and bands; its image_size may differ
  /// (the paper's tokenizer takes 112 pixels for 224), the views are then resized for it.
  TORCH_ARG(std::string, tokenizer) = "";
  /// Patches to hide, as a fraction of the grid (0.4: 78 of 196; the paper hides 75), the
  /// blocks' least area in patches (BEiT's 16 of 14 x 14; no more than the patches to hide) and
  /// least aspect ratio, as BEiT's masking generator.
  TORCH_ARG(double, mask_ratio) = 0.4;
  TORCH_ARG(int64_t, min_block_patches) = 16;
  TORCH_ARG(double, mask_aspect_ratio) = 0.3;

 public:
  void visit_fields(FieldVisitor& visit);
  /// The first field that does not fit the others or the backbone, as {key, reason}.
  std::optional<std::pair<std::string, std::string>> mismatch(const std::string& backbone) const;
};

class BeitImpl : public MethodImpl {
 public:
  /// Throws ConfigError unless `backbone` is a ViT without band groups whose patch grid and
  /// bands are the tokenizer's. The tokenizer is frozen and kept (its weights go into BEiT's
  /// checkpoints).
  BeitImpl(std::shared_ptr<BackboneImpl> backbone, std::shared_ptr<VqVaeImpl> tokenizer,
           const BeitOptions& options);
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 1; }
  void after_optimizer_step(int64_t step, int64_t /*total_steps*/) override {
    mask_draws_.set_step(step);
  }
  std::shared_ptr<BackboneImpl> encoder() override { return vit_; }

  /// The tokenizer's tokens of `images`, resized to its image size when that differs, [B, N].
  torch::Tensor targets(const torch::Tensor& images);
  /// This step's masks of `batch` images of grid x grid patches, [B, grid x grid].
  torch::Tensor masks(int64_t batch, int64_t grid) const;

 private:
  std::shared_ptr<ViTImpl> vit_;
  std::shared_ptr<VqVaeImpl> tokenizer_;
  BeitOptions options_;
  torch::Tensor mask_token_;
  torch::nn::Linear lm_head_{nullptr};
  StepDraws mask_draws_;
};
TORCH_MODULE(Beit);

}  // namespace pretext::methods
