#include "methods/mae.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/container/modulelist.h>

#include "base/errors.h"

namespace pretext::methods {

void MaeOptions::visit_fields(FieldVisitor& visit) {
  visit("mask_ratio", mask_ratio_, Check::between(0.0, 0.99));
  visit("decoder_dim", decoder_dim_, Check::between(4, 16384));
  visit("decoder_depth", decoder_depth_, Check::between(1, 64));
  visit("decoder_heads", decoder_heads_, Check::between(1, 256));
  visit("norm_pix_loss", norm_pix_loss_);
}

std::optional<std::pair<std::string, std::string>> MaeOptions::mismatch(
    const std::string& backbone) const {
  const auto n = [](int64_t v) { return std::to_string(v); };
  if (backbone != "vit") return {{"name", "mae needs model.backbone: vit, not " + backbone}};
  if (decoder_dim_ % decoder_heads_ != 0 || decoder_dim_ % 4 != 0)
    return {{"decoder_dim", n(decoder_dim_) + " must be a multiple of 4 and of decoder_heads " +
                                n(decoder_heads_)}};
  return std::nullopt;
}

Masking random_masking(const torch::Tensor& tokens, double ratio, at::Generator generator) {
  const int64_t batch = tokens.size(0), count = tokens.size(1), dim = tokens.size(2);
  const int64_t keep =
      std::max<int64_t>(1, std::llround(static_cast<double>(count) * (1.0 - ratio)));
  const auto noise = at::rand({batch, count}, generator);
  Masking m;
  const auto ids_shuffle = noise.argsort(/*dim=*/1, /*descending=*/false).to(tokens.device());
  m.ids_restore = ids_shuffle.argsort(/*dim=*/1, /*descending=*/false);
  m.ids_keep = ids_shuffle.slice(1, 0, keep);
  m.visible = tokens.gather(1, m.ids_keep.unsqueeze(-1).expand({-1, -1, dim}));
  auto mask = torch::ones({batch, count}, tokens.options());
  mask.slice(1, 0, keep).zero_();
  m.mask = mask.gather(1, m.ids_restore);
  return m;
}

torch::Tensor patchify(const torch::Tensor& images, int64_t patch) {
  const int64_t b = images.size(0), c = images.size(1);
  const int64_t h = images.size(2) / patch, w = images.size(3) / patch;
  return images.reshape({b, c, h, patch, w, patch})
      .permute({0, 2, 4, 3, 5, 1})  // b, h, w, p (row), q (column), c
      .reshape({b, h * w, patch * patch * c});
}

torch::Tensor unpatchify(const torch::Tensor& patches, int64_t patch, int64_t channels) {
  const int64_t b = patches.size(0);
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(patches.size(1))));
  return patches.reshape({b, grid, grid, patch, patch, channels})
      .permute({0, 5, 1, 3, 2, 4})
      .reshape({b, channels, grid * patch, grid * patch});
}

torch::Tensor masked_patch_loss(const torch::Tensor& prediction, const torch::Tensor& target,
                                const torch::Tensor& mask) {
  const auto per_patch = (prediction - target).pow(2).mean(-1);
  return (per_patch * mask).sum() / mask.sum();
}

MaeImpl::MaeImpl(std::shared_ptr<BackboneImpl> backbone, const MaeOptions& options)
    : vit_(std::dynamic_pointer_cast<ViTImpl>(backbone)), options_(options) {
  if (!vit_) throw ConfigError("method.name: mae needs model.backbone: vit");
  if (const auto bad = options_.mismatch("vit"))
    throw ConfigError("method." + bad->first + ": " + bad->second);
  register_module("backbone", vit_);
  const auto& v = vit_->options();
  const int64_t width = options_.decoder_dim(), prefix = vit_->prefix_count();
  decoder_embed_ = register_module("decoder_embed", torch::nn::Linear(v.dim(), width));
  mask_token_ = register_parameter("mask_token", torch::randn({1, 1, width}) * 0.02);
  auto fixed = torch::zeros({1, prefix + v.grid() * v.grid(), width});
  fixed.slice(1, prefix).copy_(sincos_position_embedding(width, v.grid()).unsqueeze(0));
  decoder_pos_embed_ = register_parameter("decoder_pos_embed", fixed, /*requires_grad=*/false);
  auto blocks = register_module("decoder_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options_.decoder_depth(); ++i) {
    decoder_blocks_.push_back(Block(width, options_.decoder_heads(), 4 * width));
    blocks->push_back(decoder_blocks_.back());
  }
  decoder_norm_ = register_module(
      "decoder_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-6)));
  decoder_pred_ = register_module(
      "decoder_pred", torch::nn::Linear(width, v.patch_size() * v.patch_size() * v.in_channels()));
  steps_ = register_buffer("steps", torch::zeros({1}, torch::kInt64));
  // Drawn from the global generator, which the run seeds before building the method.
  mask_seed_ = register_buffer("mask_seed", torch::randint(1LL << 62, {1}, torch::kInt64));
}

at::Generator MaeImpl::mask_generator() const {
  // splitmix64 of (seed, step): independent masks per step, the same on every run and resume.
  uint64_t z = static_cast<uint64_t>(mask_seed_.item<int64_t>()) +
               0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(steps_.item<int64_t>() + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return at::make_generator<at::CPUGeneratorImpl>(z ^ (z >> 31));
}

std::pair<torch::Tensor, Masking> MaeImpl::reconstruct(const torch::Tensor& images,
                                                       at::Generator generator) {
  const int64_t batch = images.size(0), prefix = vit_->prefix_count();
  const auto patches = vit_->patch_tokens(images);
  auto masking = random_masking(patches, options_.mask_ratio(), std::move(generator));
  auto x = vit_->final_norm(
      vit_->run_blocks(torch::cat({vit_->prefix_tokens(batch), masking.visible}, 1)));
  x = decoder_embed_(x);
  const int64_t width = x.size(2), hidden = patches.size(1) - masking.visible.size(1);
  auto body = torch::cat({x.slice(1, prefix), mask_token_.expand({batch, hidden, width})}, 1);
  body = body.gather(1, masking.ids_restore.unsqueeze(-1).expand({-1, -1, width}));
  x = torch::cat({x.slice(1, 0, prefix), body}, 1) + decoder_pos_embed_;
  for (auto& block : decoder_blocks_) x = block->forward(x);
  return {decoder_pred_(decoder_norm_(x)).slice(1, prefix), std::move(masking)};
}

StepOutput MaeImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(!views.empty(), "MAE takes 1 view, got none");
  const auto images = views[0].contiguous();
  auto [prediction, masking] = reconstruct(images, mask_generator());
  auto target = patchify(images, vit_->options().patch_size());
  if (options_.norm_pix_loss()) {
    const auto mean = target.mean(-1, true);
    const auto var = target.var(-1, /*unbiased=*/true, /*keepdim=*/true);
    target = (target - mean) / (var + 1e-6).sqrt();
  }
  StepOutput out;
  out.loss = masked_patch_loss(prediction, target, masking.mask);
  return out;
}

void MaeImpl::after_optimizer_step(int64_t step, int64_t /*total_steps*/) { steps_.fill_(step); }

}  // namespace pretext::methods
