#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/vit.h"

namespace pretext::methods {

/// Masked autoencoder (He et al. 2022): the ViT encoder sees a random subset of the patches, a
/// light decoder with mask tokens reconstructs the pixels of the others.
///   Mae mae(vit, MaeOptions().mask_ratio(0.75).decoder_dim(64).decoder_depth(2));
struct MaeOptions {
  /// Fraction of the patches hidden from the encoder.
  TORCH_ARG(double, mask_ratio) = 0.75;
  /// Decoder width, blocks and heads (decoder_dim a multiple of 4 and of decoder_heads).
  TORCH_ARG(int64_t, decoder_dim) = 128;
  TORCH_ARG(int64_t, decoder_depth) = 2;
  TORCH_ARG(int64_t, decoder_heads) = 4;
  /// Reconstruct each patch normalised by its own mean and variance (the paper's better target).
  TORCH_ARG(bool, norm_pix_loss) = true;

 public:
  void visit_fields(FieldVisitor& visit);
  /// The first field that does not fit the others or the backbone, as {key, reason}.
  std::optional<std::pair<std::string, std::string>> mismatch(const std::string& backbone) const;
};

/// A random split of each sequence into kept and masked tokens.
struct Masking {
  torch::Tensor visible;      ///< [B, keep, D] the kept tokens, in shuffled order
  torch::Tensor mask;         ///< [B, N] 1 for a masked token, 0 for a kept one, original order
  torch::Tensor ids_keep;     ///< [B, keep] original index of each kept token
  torch::Tensor ids_restore;  ///< [B, N] position in (kept ++ masked) of each original token
};

/// Keeps round(N * (1 - ratio)) tokens per row (at least one), chosen by sorting noise drawn
/// from `generator` (on the CPU, so the masks do not depend on the device).
Masking random_masking(const torch::Tensor& tokens, double ratio, at::Generator generator);

/// Images [B, C, H, W] as patches [B, (H/p)*(W/p), p*p*C], row-major over the grid, pixels
/// within a patch ordered (row, column, band) as in the MAE reference; `unpatchify` inverts it.
torch::Tensor patchify(const torch::Tensor& images, int64_t patch);
torch::Tensor unpatchify(const torch::Tensor& patches, int64_t patch, int64_t channels);

/// Mean squared error per patch, averaged over the masked patches only.
torch::Tensor masked_patch_loss(const torch::Tensor& prediction, const torch::Tensor& target,
                                const torch::Tensor& mask);

class MaeImpl : public MethodImpl {
 public:
  /// Throws ConfigError unless `backbone` is a ViT.
  MaeImpl(std::shared_ptr<BackboneImpl> backbone, const MaeOptions& options);
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 1; }
  void after_optimizer_step(int64_t step, int64_t total_steps) override;
  std::shared_ptr<BackboneImpl> encoder() override { return vit_; }

  /// Predicted patches [B, N, p*p*C] (in the target's normalisation) and the masking used.
  std::pair<torch::Tensor, Masking> reconstruct(const torch::Tensor& images,
                                                at::Generator generator);

 private:
  at::Generator mask_generator() const;

  std::shared_ptr<ViTImpl> vit_;
  MaeOptions options_;
  torch::nn::Linear decoder_embed_{nullptr}, decoder_pred_{nullptr};
  torch::Tensor mask_token_, decoder_pos_embed_;
  std::vector<Block> decoder_blocks_;
  torch::nn::LayerNorm decoder_norm_{nullptr};
  // Optimiser steps taken and the seed of the masks, buffers so that checkpoints carry them and a
  // resumed run draws the masks an uninterrupted one would.
  torch::Tensor steps_, mask_seed_;
};
TORCH_MODULE(Mae);

}  // namespace pretext::methods
