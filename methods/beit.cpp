#include "methods/beit.h"

#include <algorithm>

#include <torch/nn/functional.h>

#include "base/device.h"
#include "base/errors.h"
#include "methods/masking.h"

namespace pretext::methods {
namespace F = torch::nn::functional;

void BeitOptions::visit_fields(FieldVisitor& visit) {
  visit("tokenizer", tokenizer_);
  visit("mask_ratio", mask_ratio_, Check::between(0.01, 0.9));
  visit("min_block_patches", min_block_patches_, Check::between(1, 1 << 20));
  visit("mask_aspect_ratio", mask_aspect_ratio_, Check::between(0.01, 1));
}

std::optional<std::pair<std::string, std::string>> BeitOptions::mismatch(
    const std::string& backbone) const {
  if (backbone != "vit") return {{"name", "beit needs the vit backbone, not " + backbone}};
  if (tokenizer_.empty())
    return {{"tokenizer",
             "required: the checkpoint of a vqvae run (pretext pretrain with method.name: "
             "vqvae, same data and normalisation), e.g. runs/tokenizer/checkpoint.pt"}};
  return std::nullopt;
}

BeitImpl::BeitImpl(std::shared_ptr<BackboneImpl> backbone, std::shared_ptr<VqVaeImpl> tokenizer,
                   const BeitOptions& options)
    : vit_(std::dynamic_pointer_cast<ViTImpl>(backbone)),
      tokenizer_(std::move(tokenizer)),
      options_(options) {
  if (!vit_) throw ConfigError("method", "name", "beit needs the vit backbone");
  TORCH_CHECK(tokenizer_, "beit needs a tokenizer");
  const auto& v = vit_->options();
  const auto& t = tokenizer_->vit_options();
  if (v.groups().size() > 1)
    throw ConfigError("model", "band_groups",
                      "beit predicts one token per patch; band groups give several");
  if (t.grid() != v.grid())
    throw ConfigError("method", "tokenizer",
                      "its ViT tokenizes " + std::to_string(t.image_size()) + " pixels in a " +
                          std::to_string(t.grid()) + "x" + std::to_string(t.grid()) +
                          " grid; this ViT's grid is " + std::to_string(v.grid()) + "x" +
                          std::to_string(v.grid()) + " (model.image_size / patch_size)");
  if (t.in_channels() != v.in_channels())
    throw ConfigError("method", "tokenizer",
                      "it takes " + std::to_string(t.in_channels()) + " bands, the data has " +
                          std::to_string(v.in_channels()));
  register_module("backbone", vit_);
  register_module("tokenizer", tokenizer_);
  for (auto& p : tokenizer_->parameters()) p.set_requires_grad(false);
  // A normal of spread 0.02 for the mask token and the head, the head's bias 0; the reference
  // truncates the normal at +-0.02 (a spread of about 0.011).
  mask_token_ = register_parameter("mask_token", torch::randn({1, 1, v.dim()}) * 0.02);
  lm_head_ = register_module("lm_head", torch::nn::Linear(v.dim(), tokenizer_->codebook_size()));
  {
    torch::NoGradGuard no_grad;
    lm_head_->weight.normal_(0, 0.02);
    lm_head_->bias.zero_();
  }
  mask_draws_ = StepDraws(*this, "mask_seed");
}

torch::Tensor BeitImpl::masks(int64_t batch, int64_t grid) const {
  const double target = options_.mask_ratio() * static_cast<double>(grid * grid);
  return block_mask_rows(batch, grid, options_.mask_ratio(),
                         std::min(static_cast<double>(options_.min_block_patches()), target),
                         options_.mask_aspect_ratio(), mask_draws_.generator(), batch_slice());
}

torch::Tensor BeitImpl::targets(const torch::Tensor& images) {
  const int64_t side = tokenizer_->vit_options().image_size();
  if (images.size(2) == side && images.size(3) == side) return tokenizer_->codes(images);
  return tokenizer_->codes(F::interpolate(images, F::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{side, side})
                                                      .mode(torch::kBilinear)
                                                      .align_corners(false)
                                                      .antialias(true)));
}

StepOutput BeitImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(!views.empty(), "beit takes 1 view, got none");
  const auto& images = views[0];
  const int64_t grid = images.size(2) / vit_->options().patch_size();
  const auto mask = to_device(masks(images.size(0), grid), images.device());
  const auto hidden = mask.flatten().nonzero().squeeze(1);
  const auto labels = targets(images).flatten().index_select(0, hidden);
  // The head only where a token is predicted, as the reference (x[bool_masked_pos]).
  const auto tokens = vit_->final_tokens(images, mask.to(images.scalar_type()), mask_token_)
                          .slice(1, vit_->prefix_count())
                          .flatten(0, 1)
                          .index_select(0, hidden);
  const auto logits = lm_head_(tokens);
  // The mean over the masked patches of the global batch, as the reference's over its batch's:
  // each rank's sum over the global count, times the ranks whose gradients are averaged.
  auto count = torch::full({1}, static_cast<double>(hidden.size(0)),
                           torch::TensorOptions().dtype(torch::kFloat64).device(images.device()));
  double ranks = 1;
  if (group()) {
    group()->sum({count});
    ranks = static_cast<double>(group()->size());
  }
  const auto sum =
      F::cross_entropy(logits, labels, F::CrossEntropyFuncOptions().reduction(torch::kSum));
  StepOutput out;
  out.loss = sum * (ranks / count.clamp_min(1).to(sum.scalar_type()));
  torch::NoGradGuard no_grad;
  auto correct = logits.argmax(-1).eq(labels).sum().to(torch::kFloat64).reshape({1});
  if (group()) group()->sum({correct});
  out.logs["mim_accuracy"] = correct / count.clamp_min(1);
  out.logs["masked_fraction"] = mask.mean();
  return out;
}

}  // namespace pretext::methods
