#include "methods/rotation.h"

#include <torch/nn/functional.h>

#include "methods/losses.h"

namespace pretext::methods {
namespace F = torch::nn::functional;

void RotationOptions::visit_fields(FieldVisitor& visit) {
  visit("head_hidden_dim", head_hidden_dim_, Check::between(0, 1 << 16));
}

torch::Tensor four_rotations(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(2) == images.size(3),
              "rotation takes square images [B, C, S, S], got ", images.sizes());
  return torch::cat({images, torch::rot90(images, 1, {2, 3}), torch::rot90(images, 2, {2, 3}),
                     torch::rot90(images, 3, {2, 3})});
}

RotationImpl::RotationImpl(std::shared_ptr<BackboneImpl> backbone, const RotationOptions& options)
    : backbone_(std::move(backbone)) {
  register_module("backbone", backbone_);
  const int64_t hidden = options.head_hidden_dim();
  head_ = register_module("head", ProjectionHead(ProjectionHeadOptions(backbone_->feature_dim(), 4)
                                                     .hidden_dim(hidden > 0 ? hidden : 1)
                                                     .layers(hidden > 0 ? 2 : 1)));
}

StepOutput RotationImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(!views.empty(), "rotation takes 1 view, got none");
  const int64_t batch = views[0].size(0);
  const auto features =
      backbone_->forward(four_rotations(views[0]).contiguous(torch::MemoryFormat::ChannelsLast));
  const auto logits = head_->forward(features);
  const auto turns = torch::arange(4, torch::dtype(torch::kInt64).device(logits.device()))
                         .repeat_interleave(batch);
  StepOutput out;
  out.loss = F::cross_entropy(logits, turns);
  out.logs["accuracy"] = logits.detach().argmax(1).eq(turns).to(torch::kFloat32).mean();
  out.logs["embedding_std"] = embedding_std(features.detach());
  return out;
}

}  // namespace pretext::methods
