#include "methods/simmim.h"

#include "base/device.h"
#include "base/errors.h"
#include "methods/mae.h"

namespace pretext::methods {

void SimMimOptions::visit_fields(FieldVisitor& visit) {
  visit("mask_ratio", mask_ratio_, Check::between(0.01, 0.99));
  visit("mask_patch_size", mask_patch_size_, Check::between(1, 4096));
}

std::optional<std::pair<std::string, std::string>> SimMimOptions::mismatch(
    const std::string& backbone) const {
  if (backbone != "vit") return {{"name", "simmim needs the vit backbone, not " + backbone}};
  return std::nullopt;
}

SimMimImpl::SimMimImpl(std::shared_ptr<BackboneImpl> backbone, const SimMimOptions& options)
    : vit_(std::dynamic_pointer_cast<ViTImpl>(backbone)), options_(options) {
  if (!vit_) throw ConfigError("method", "name", "simmim needs the vit backbone");
  const auto& v = vit_->options();
  if (v.groups().size() > 1)
    throw ConfigError("model", "band_groups",
                      "simmim predicts every band of a patch from its one token; band groups "
                      "give several tokens per patch (use mae or satmae for them)");
  const int64_t block = options_.mask_patch_size();
  if (block % v.patch_size() != 0 || v.image_size() % block != 0)
    throw ConfigError("method", "mask_patch_size",
                      std::to_string(block) + " must be a multiple of model.patch_size " +
                          std::to_string(v.patch_size()) + " and divide model.image_size " +
                          std::to_string(v.image_size()));
  register_module("backbone", vit_);
  // The reference: trunc_normal_(std=0.02), here a normal of the same spread.
  mask_token_ = register_parameter("mask_token", torch::randn({1, 1, v.dim()}) * 0.02);
  decoder_ = register_module(
      "decoder", torch::nn::Linear(v.dim(), v.patch_size() * v.patch_size() * v.in_channels()));
  mask_draws_ = StepDraws(*this, "mask_seed");
}

torch::Tensor SimMimImpl::reconstruct(const torch::Tensor& images, const torch::Tensor& mask) {
  return decoder_(vit_->final_tokens(images, mask, mask_token_).slice(1, vit_->prefix_count()));
}

torch::Tensor SimMimImpl::masked_l1(const torch::Tensor& prediction, const torch::Tensor& target,
                                    const torch::Tensor& mask, int64_t bands) {
  const int64_t pixels_per_patch = target.size(2) / bands;
  const auto error = (prediction - target).abs().sum(2);
  return (error * mask).sum() / (mask.sum() * pixels_per_patch).clamp_min(1) / bands;
}

StepOutput SimMimImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(!views.empty(), "simmim takes 1 view, got none");
  const auto& images = views[0];
  const auto& v = vit_->options();
  const int64_t grid = images.size(2) / v.patch_size();
  const auto mask =
      to_device(block_masks(images.size(0), grid, options_.mask_patch_size() / v.patch_size(),
                            options_.mask_ratio(), mask_draws_.generator(), batch_slice()),
                images.device())
          .to(images.scalar_type());
  StepOutput out;
  out.loss =
      masked_l1(reconstruct(images, mask), patchify(images, v.patch_size()), mask, v.in_channels());
  return out;
}

}  // namespace pretext::methods
