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
#include "methods/step_random.h"
#include "methods/vit.h"

namespace pretext::methods {

/// Masked autoencoder (He et al. 2022): the ViT encoder sees a random subset of the patches, a
/// light decoder with mask tokens reconstructs the pixels of the others. With the ViT's band
/// groups and temporal stacks it is SatMAE (Cong et al. 2022): a token per patch position, band
/// group and frame, each group reconstructed by its own head and loss.
///   Mae mae(vit, MaeOptions().mask_ratio(0.75).decoder_dim(64).decoder_depth(2));
struct MaeOptions {
  /// Fraction of the patches hidden from the encoder.
  TORCH_ARG(double, mask_ratio) = 0.75;
  /// Decoder width, blocks and heads (decoder_dim a multiple of 4 and of decoder_heads).
  TORCH_ARG(int64_t, decoder_dim) = 128;
  TORCH_ARG(int64_t, decoder_depth) = 2;
  TORCH_ARG(int64_t, decoder_heads) = 4;
  /// Reconstruct each patch normalised by its own mean and variance (the paper's better target;
  /// with band groups over all bands of the patch, as SatMAE's reference).
  TORCH_ARG(bool, norm_pix_loss) = true;
  /// With several tokens per patch position (band groups, frames): "independent" draws every
  /// token's mask on its own, "consistent" hides the same positions in every group and frame
  /// (SatMAE's two schemes; it found independent better).
  TORCH_ARG(std::string, masking) = "independent";
  /// Add SatMAE's temporal encoding of each frame's acquisition date (acquisition_encoding) to
  /// its tokens in the encoder and the decoder; images without dates get none.
  TORCH_ARG(bool, temporal_encoding) = false;

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

/// Splits tokens [B, sequences x N, D], sequence-major (SatMAE: one sequence of N patch positions
/// per frame and band group), by sorting noise drawn from `generator` (on the CPU, so the masks
/// do not depend on the device). Independent: round(sequences x N x (1 - ratio)) tokens of a row
/// are kept (at least one), wherever they are. Consistent: the same round(N x (1 - ratio))
/// positions (at least one) are kept in every sequence. With `slice` the rows are that part of a
/// global batch and get the masks drawn for their rows of it.
Masking random_masking(const torch::Tensor& tokens, double ratio, at::Generator generator,
                       int64_t sequences = 1, bool consistent = false,
                       const BatchSlice& slice = {});

/// SatMAE's temporal encoding: acquisition dates as days since 1970-01-01 [...] -> [..., dim],
/// the sine-cosine encoding (sincos_encoding) of the years since 1970 (days / 365.2425) in the
/// first half and of the day of the year (from 0, the remainder of that division) in the second:
/// year and season, as the reference encodes year, month and hour. dim a multiple of 4.
torch::Tensor acquisition_encoding(const torch::Tensor& days, int64_t dim);

/// Images [B, C, H, W] as patches [B, (H/p)*(W/p), p*p*C], row-major over the grid, pixels
/// within a patch ordered (row, column, band) as in the MAE reference; `unpatchify` inverts it.
torch::Tensor patchify(const torch::Tensor& images, int64_t patch);
torch::Tensor unpatchify(const torch::Tensor& patches, int64_t patch, int64_t channels);

/// Mean squared error per patch, averaged over the masked patches only (0 when none is masked).
torch::Tensor masked_patch_loss(const torch::Tensor& prediction, const torch::Tensor& target,
                                const torch::Tensor& mask);

class MaeImpl : public MethodImpl {
 public:
  /// Throws ConfigError unless `backbone` is a ViT.
  MaeImpl(std::shared_ptr<BackboneImpl> backbone, const MaeOptions& options);
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  /// reconstruct with this step's masks, then loss.
  StepOutput step_dated(const std::vector<torch::Tensor>& views,
                        const torch::Tensor& acquired_at) override;
  /// The reconstruction loss of `predictions` (from reconstruct) against `stack`: the mean
  /// squared error over every masked token of every band group, each patch's target normalised
  /// (norm_pix_loss) over the pixels of all its bands, as SatMAE's forward_loss; with several
  /// groups the log has each group's masked loss as loss_group_<g>.
  StepOutput loss(const torch::Tensor& stack, const std::vector<torch::Tensor>& predictions,
                  const Masking& masking) const;
  int64_t view_count() const override { return 1; }
  bool joint_frames() const override { return true; }
  void after_optimizer_step(int64_t step, int64_t total_steps) override;
  std::shared_ptr<BackboneImpl> encoder() override { return vit_; }

  /// For stacks [B, frames x C, H, W] (acquired_at [B, frames] or undefined): the predicted
  /// patches of each band group g, [B, frames x N, p*p*C_g] frame-major (in the target's
  /// normalisation), and the masking of the [B, frames x groups x N] tokens.
  std::pair<std::vector<torch::Tensor>, Masking> reconstruct(const torch::Tensor& stack,
                                                             const torch::Tensor& acquired_at,
                                                             at::Generator generator);
  /// The pixels of group g that its predictions stand for: [B, frames x N, p*p*C_g].
  torch::Tensor group_patches(const torch::Tensor& stack, int64_t group) const;

 private:
  /// [B, frames, 1, 1, dim] date encodings, undefined without dates or temporal_encoding.
  torch::Tensor date_encoding(const torch::Tensor& acquired_at, int64_t frames, int64_t dim) const;

  std::shared_ptr<ViTImpl> vit_;
  MaeOptions options_;
  std::vector<int64_t> groups_;  // band group sizes of the ViT
  torch::nn::Linear decoder_embed_{nullptr};
  std::vector<torch::nn::Linear> decoder_pred_;  // one head per band group
  torch::Tensor mask_token_, decoder_pos_embed_, decoder_group_embed_;
  std::vector<Block> decoder_blocks_;
  torch::nn::LayerNorm decoder_norm_{nullptr};
  // Optimiser steps taken and the seed of the masks, buffers so that checkpoints carry them and a
  // resumed run draws the masks an uninterrupted one would.
  StepDraws mask_draws_;
};
TORCH_MODULE(Mae);

}  // namespace pretext::methods
