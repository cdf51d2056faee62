#include "methods/simsiam.h"

#include "methods/losses.h"

namespace pretext::methods {

void SimSiamOptions::visit_fields(FieldVisitor& visit) {
  visit("projection_dim", projection_dim_, Check::between(1, 1 << 16));
  visit("projection_hidden_dim", projection_hidden_dim_, Check::between(1, 1 << 16));
  visit("projection_layers", projection_layers_, Check::between(1, 8));
  visit("predictor_hidden_dim", predictor_hidden_dim_, Check::between(1, 1 << 16));
  visit("fix_predictor_lr", fix_predictor_lr_);
}

SimSiamImpl::SimSiamImpl(std::shared_ptr<BackboneImpl> backbone, const SimSiamOptions& options)
    : fix_predictor_lr_(options.fix_predictor_lr()), backbone_(std::move(backbone)) {
  register_module("backbone", backbone_);
  projector_ = register_module(
      "projector",
      ProjectionHead(ProjectionHeadOptions(backbone_->feature_dim(), options.projection_dim())
                         .hidden_dim(options.projection_hidden_dim())
                         .layers(options.projection_layers())
                         .batch_norm_last(true)));
  predictor_ = register_module(
      "predictor",
      ProjectionHead(ProjectionHeadOptions(options.projection_dim(), options.projection_dim())
                         .hidden_dim(options.predictor_hidden_dim())
                         .layers(2)));
}

std::vector<torch::Tensor> SimSiamImpl::constant_lr_parameters() {
  return fix_predictor_lr_ ? predictor_->parameters() : std::vector<torch::Tensor>{};
}

StepOutput SimSiamImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(views.size() == 2, "SimSiam takes 2 views, got ", views.size());
  const auto z1 = projector_->forward(backbone_->forward(views[0]));
  const auto z2 = projector_->forward(backbone_->forward(views[1]));
  const auto p1 = predictor_->forward(z1), p2 = predictor_->forward(z2);
  StepOutput out;
  out.loss = (negative_cosine(p1, z2) + negative_cosine(p2, z1)) / 2;
  out.logs["embedding_std"] = embedding_std(gathered(z1));
  return out;
}

}  // namespace pretext::methods
