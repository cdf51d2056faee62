#include "methods/byol.h"

#include "methods/losses.h"

namespace pretext::methods {

void ByolOptions::visit_fields(FieldVisitor& visit) {
  visit("projection_dim", projection_dim_, Check::between(1, 1 << 16));
  visit("projection_hidden_dim", projection_hidden_dim_, Check::between(1, 1 << 16));
  visit("predictor_hidden_dim", predictor_hidden_dim_, Check::between(1, 1 << 16));
  visit("momentum", momentum_, Check::between(0, 1));
}

ByolImpl::ByolImpl(std::shared_ptr<BackboneImpl> backbone,
                   std::shared_ptr<BackboneImpl> target_backbone, const ByolOptions& options)
    : MomentumMethodImpl(std::move(backbone), std::move(target_backbone),
                         ProjectionHeadOptions(0, options.projection_dim())
                             .hidden_dim(options.projection_hidden_dim())
                             .layers(2),
                         options.predictor_hidden_dim(), options.momentum()) {}

StepOutput ByolImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(views.size() == 2, "BYOL takes 2 views, got ", views.size());
  const auto p1 = online(views[0]), p2 = online(views[1]);
  const auto z1 = target(views[0]), z2 = target(views[1]);
  StepOutput out;
  out.loss = 4 + 2 * (negative_cosine(p1, z2) + negative_cosine(p2, z1));
  out.logs["embedding_std"] = embedding_std(gathered(p1));
  return out;
}

}  // namespace pretext::methods
