#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "base/fields.h"
#include "methods/backbone.h"

namespace pretext::methods {

/// A Vision Transformer for any number of input bands. Parameter names follow timm's
/// VisionTransformer (patch_embed.proj, cls_token, pos_embed, blocks.N.norm1 / attn.qkv /
/// attn.proj / norm2 / mlp.fc1 / mlp.fc2, then norm or fc_norm; no head), so an exported state
/// dict loads into timm.create_model(..., num_classes=0) of the same shape, with
/// global_pool="token" for pool "cls" and global_pool="avg" for pool "mean".
///   ViT vit(ViTOptions().image_size(28).patch_size(4).dim(128).depth(4).heads(4).mlp_ratio(2));
struct ViTOptions {
  /// Side of the square input in pixels; a multiple of patch_size.
  TORCH_ARG(int64_t, image_size) = 224;
  TORCH_ARG(int64_t, patch_size) = 16;
  TORCH_ARG(int64_t, in_channels) = 3;
  /// Token width, blocks, attention heads (dim is a multiple of heads).
  TORCH_ARG(int64_t, dim) = 384;
  TORCH_ARG(int64_t, depth) = 12;
  TORCH_ARG(int64_t, heads) = 6;
  /// Hidden width of each block's MLP as a multiple of dim.
  TORCH_ARG(double, mlp_ratio) = 4.0;
  /// A learned class token ahead of the patch tokens.
  TORCH_ARG(bool, class_token) = true;
  /// "learned" (trained, initialised N(0, 0.02)) or "sincos" (fixed 2-D sine-cosine, as in MAE).
  TORCH_ARG(std::string, position_embedding) = "learned";
  /// Features: "cls" (the class token after the final norm) or "mean" (the mean of the patch
  /// tokens, then fc_norm).
  TORCH_ARG(std::string, pool) = "cls";
  /// Spectral band groups (SatMAE): sizes of consecutive runs of the input bands, each with its
  /// own patch embedding, so every patch position gives one token per group, told apart by a
  /// fixed sine-cosine group encoding added to the position embedding. Empty: one embedding of
  /// all bands (timm's layout).
  TORCH_ARG(std::vector<int64_t>, band_groups) = {};
  /// LayerScale (CaiT; DINOv2's ViTs, init 1e-5): each block's attention and MLP outputs scaled
  /// per channel by a learned gamma starting at this value (blocks.N.ls1.gamma / ls2.gamma, as
  /// timm with init_values and DINOv2); 0: none.
  TORCH_ARG(double, layer_scale_init) = 0.0;

 public:
  /// The fields a config sets (in_channels comes from the data).
  void visit_fields(FieldVisitor& visit);
  /// The first field that does not fit the others, as {key, reason}; nullopt when all fit.
  std::optional<std::pair<std::string, std::string>> mismatch() const;
  int64_t grid() const { return image_size_ / patch_size_; }
  /// The group sizes, in_channels as one group when band_groups is empty.
  std::vector<int64_t> groups() const;
};

/// Multi-head self-attention with one qkv projection (timm's Attention).
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads);
  /// tokens [B, N, D] -> [B, N, D]; `weights`, when given, receives the softmax [B, heads, N, N].
  torch::Tensor forward(const torch::Tensor& tokens, torch::Tensor* weights = nullptr);

 private:
  int64_t heads_;
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(Attention);

/// Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)) with GELU; with
/// `layer_scale_init` > 0 each branch is scaled by its LayerScale gamma.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t dim, int64_t heads, int64_t hidden, double layer_scale_init = 0);
  torch::Tensor forward(const torch::Tensor& tokens, torch::Tensor* weights = nullptr);

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  Attention attn_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  torch::Tensor gamma1_, gamma2_;  // LayerScale, undefined without
};
TORCH_MODULE(Block);

/// `count` blocks of `dim` registered in `owner` as the ModuleList `name` (blocks.N.*): a ViT's
/// and the decoders' (MAE, the VQ-VAE).
std::vector<Block> register_blocks(torch::nn::Module& owner, const std::string& name, int64_t count,
                                   int64_t dim, int64_t heads, int64_t hidden,
                                   double layer_scale_init = 0);

/// The 1-D sine-cosine encoding of MAE's reference (get_1d_sincos_pos_embed_from_grid): for
/// positions [...] (any real values) -> [..., dim], sin of position x omega_i in the first half
/// and cos in the second, omega_i = 1 / 10000^(i / (dim / 2)); dim even.
torch::Tensor sincos_encoding(const torch::Tensor& positions, int64_t dim);

/// The fixed 2-D sine-cosine position embedding of MAE: [grid * grid, dim], half of the channels
/// for the row and half for the column, each sin / cos of the position at dim / 4 frequencies
/// 1 / 10000^(i / (dim / 4)).
torch::Tensor sincos_position_embedding(int64_t dim, int64_t grid);

/// Patch position embeddings [1, M x M, dim] of an M x M grid resampled to grid x grid, as the
/// DINO and DINOv2 references' interpolate_pos_encoding: bicubic with the scale factor
/// (grid + 0.1) / M (their interpolate_offset), not the exact size ratio.
torch::Tensor resample_positions(const torch::Tensor& positions, int64_t grid);

class ViTImpl : public BackboneImpl {
 public:
  /// Throws ConfigError ("model.<key>: reason") when the options do not fit together.
  explicit ViTImpl(const ViTOptions& options);
  torch::Tensor forward(const torch::Tensor& images) override;  // [B, C, H, W] -> [B, dim]
  int64_t feature_dim() const override { return options_.dim(); }
  int64_t in_channels() const override { return options_.in_channels(); }
  /// Patch embedding, class token and positions are layer 0, block i is layer i + 1; the final
  /// norm goes with the head (layer_count()), as in BEiT / MAE layer-wise decay.
  int64_t layer_count() const override { return options_.depth() + 1; }
  int64_t layer_of(const std::string& parameter_name) const override;
  /// Position embeddings saved for another grid (a DINOv2 ViT of 518 pixels, patch 14: 37 x 37)
  /// resampled to this one, at the offset of resample_positions.
  torch::Tensor fitted(const std::string& name, const torch::Tensor& saved) const override;
  const ViTOptions& options() const { return options_; }

  /// Tokens after the blocks, before the final norm: [B, prefix + patches, dim], where prefix is
  /// 1 with a class token. `attention` receives the last block's [B, heads, N, N] if given.
  torch::Tensor tokens(const torch::Tensor& images, torch::Tensor* attention = nullptr);
  /// The pieces of `tokens`, for methods that drop tokens between them (MAE):
  /// patch embeddings with their positions (and group encodings) [B, groups x patches, dim],
  /// group-major; with `mask` [B, patches] (1: hidden), the embedding of every hidden patch, in
  /// every group, is replaced by `mask_token` [1, 1, dim] before the positions are added
  /// (SimMIM, BEiT, iBOT) ...
  torch::Tensor patch_tokens(const torch::Tensor& images, const torch::Tensor& mask = {},
                             const torch::Tensor& mask_token = {});
  /// ... the class token with its position [B, 1, dim], or [B, 0, dim] without one ...
  torch::Tensor prefix_tokens(int64_t batch);
  /// ... the blocks over any token sequence, and the final norm, token-wise.
  torch::Tensor run_blocks(torch::Tensor tokens, torch::Tensor* attention = nullptr);
  torch::Tensor final_norm(const torch::Tensor& tokens) { return norm_(tokens); }
  /// All of them: every token after the blocks and the final norm, [B, prefix + patches, dim],
  /// the patches where `mask` is 1 as `mask_token`; what masked image modelling predicts from
  /// (SimMIM, BEiT, iBOT, the VQ-VAE tokenizer).
  torch::Tensor final_tokens(const torch::Tensor& images, const torch::Tensor& mask = {},
                             const torch::Tensor& mask_token = {});
  int64_t prefix_count() const { return options_.class_token() ? 1 : 0; }

  /// Per image the last block's attention to each patch, averaged over heads (and band groups),
  /// as a [B, grid, grid] map: from the class token when there is one, else averaged over all
  /// queries. What DINO showed to outline objects without labels.
  torch::Tensor attention_map(const torch::Tensor& images);

 private:
  ViTOptions options_;
  std::vector<int64_t> groups_;
  std::vector<torch::nn::Conv2d> patch_embeds_;  // one per band group
  torch::Tensor cls_token_, pos_embed_, group_embed_;
  std::vector<Block> blocks_;
  torch::nn::LayerNorm norm_{nullptr};  // "norm" for pool cls, "fc_norm" for pool mean
};
TORCH_MODULE(ViT);

}  // namespace pretext::methods
