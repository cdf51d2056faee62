#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/step_random.h"
#include "methods/vit.h"

namespace pretext::methods {

/// A vector-quantised autoencoder (VQ-VAE, van den Oord et al. 2017) whose codes are visual
/// tokens, one per ViT patch: BEiT's tokenizer, trained on the run's own data because DALL-E's
/// dVAE cannot be downloaded here. As ViT-VQGAN (Yu et al. 2022): the encoder is the configured
/// ViT, each patch token is projected to a small code_dim and l2-normalised, as are the codebook
/// entries, and the nearest entry (largest cosine) is the patch's token; a light transformer
/// decoder (MAE's) reconstructs the patch's pixels from the tokens alone, the encoder learning
/// through the quantiser by the straight-through estimator. Loss: the mean squared error of the
/// pixels, plus the codebook term |sg(z) - e|^2 and commitment x |z - sg(e)|^2.
///   VqVae tokenizer(vit, VqVaeOptions().codebook_size(512).code_dim(32));
struct VqVaeOptions {
  /// Entries of the codebook: BEiT's vocabulary (8192 for DALL-E's dVAE).
  TORCH_ARG(int64_t, codebook_size) = 8192;
  /// Width of the lookup (ViT-VQGAN's factorised codes: 32 keeps more entries in use).
  TORCH_ARG(int64_t, code_dim) = 32;
  /// Weight of the commitment term (the paper's beta).
  TORCH_ARG(double, commitment) = 0.25;
  /// Decoder width, blocks and heads (decoder_dim a multiple of 4 and of decoder_heads).
  TORCH_ARG(int64_t, decoder_dim) = 128;
  TORCH_ARG(int64_t, decoder_depth) = 2;
  TORCH_ARG(int64_t, decoder_heads) = 4;
  /// Restarting unused entries (as Jukebox's and vector-quantize-pytorch's dead-code
  /// replacement): each entry's share of the global batch's patches is averaged over the steps
  /// (a moving average of decay usage_decay), and after an optimiser step every entry whose
  /// average fell below restart_below x the uniform share 1 / codebook_size is set to a random
  /// latent of that step's batch. 0: never (a codebook collapsed to a few entries stays so).
  TORCH_ARG(double, restart_below) = 0.03;
  TORCH_ARG(double, usage_decay) = 0.9;

 public:
  void visit_fields(FieldVisitor& visit);
  /// The first field that does not fit the others or the backbone, as {key, reason}.
  std::optional<std::pair<std::string, std::string>> mismatch(const std::string& backbone) const;
};

class VqVaeImpl : public MethodImpl {
 public:
  /// Throws ConfigError unless `backbone` is a ViT without band groups.
  VqVaeImpl(std::shared_ptr<BackboneImpl> backbone, const VqVaeOptions& options);
  /// One view; the loss is reconstruction + codebook + commitment x commitment term.
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 1; }
  /// Restarts the entries the last step found unused.
  void after_optimizer_step(int64_t step, int64_t total_steps) override;
  std::shared_ptr<BackboneImpl> encoder() override { return vit_; }
  const ViTOptions& vit_options() const { return vit_->options(); }
  int64_t codebook_size() const { return options_.codebook_size(); }

  /// The l2-normalised projections of the patch tokens, [B, N, code_dim].
  torch::Tensor latents(const torch::Tensor& images);
  /// The l2-normalised codebook, [codebook_size, code_dim].
  torch::Tensor codebook() const;
  /// The index of the entry nearest to each latent [..., code_dim] (largest dot product, for
  /// unit vectors the smallest distance, in float32 under autocast too), [...] int64.
  static torch::Tensor nearest(const torch::Tensor& latents, const torch::Tensor& codebook);
  /// The visual tokens of images of vit_options().image_size() pixels, [B, N] int64, N the
  /// ViT's patches, without gradient.
  torch::Tensor codes(const torch::Tensor& images);
  /// Each entry's average share of the patches, [codebook_size].
  const torch::Tensor& usage() const { return usage_; }
  /// Pixels of every patch from quantised latents [B, N, code_dim], [B, N, p x p x bands] in
  /// patchify's order.
  torch::Tensor decode(const torch::Tensor& quantised);

 private:
  std::shared_ptr<ViTImpl> vit_;
  VqVaeOptions options_;
  torch::nn::Linear quant_proj_{nullptr}, decoder_embed_{nullptr}, decoder_pred_{nullptr};
  torch::Tensor codebook_, decoder_pos_embed_, usage_;
  std::vector<Block> decoder_blocks_;
  torch::nn::LayerNorm decoder_norm_{nullptr};
  StepDraws restart_draws_;
  // What the last step decided to restart: entries [codebook_size] bool and their new values.
  torch::Tensor restart_, restart_values_;
};
TORCH_MODULE(VqVae);

}  // namespace pretext::methods
