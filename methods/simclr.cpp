#include "methods/simclr.h"

#include "methods/losses.h"

namespace pretext::methods {

void SimClrOptions::visit_fields(FieldVisitor& visit) {
  visit("temperature", temperature_, Check::above(0));
  visit("projection_dim", projection_dim_, Check::at_least(1));
  visit("projection_hidden_dim", projection_hidden_dim_, Check::at_least(0));
  visit("projection_layers", projection_layers_, Check::at_least(1));
}

SimClrImpl::SimClrImpl(std::shared_ptr<BackboneImpl> backbone, const SimClrOptions& options)
    : backbone_(std::move(backbone)), options_(options) {
  register_module("backbone", backbone_);
  const int64_t features = backbone_->feature_dim();
  projector_ = register_module(
      "projector", ProjectionHead(ProjectionHeadOptions(features, options.projection_dim())
                                      .hidden_dim(options.projection_hidden_dim() > 0
                                                      ? options.projection_hidden_dim()
                                                      : features)
                                      .layers(options.projection_layers())));
}

StepOutput SimClrImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(views.size() == 2, "SimCLR takes 2 views, got ", views.size());
  const int64_t n = views[0].size(0);
  // One forward over both views: BatchNorm sees all 2N images, as in the reference code.
  const auto z = projector_(backbone_->forward(torch::cat({views[0], views[1]})));
  const auto z1 = z.slice(0, 0, n), z2 = z.slice(0, n);
  StepOutput out;
  // On N ranks every anchor's negatives are the projections of the global batch, gathered with
  // their gradient (the reference's all_gather with gradient on multiple devices).
  out.loss = group() ? nt_xent(z1, z2, options_.temperature(), all_gather_with_grad(*group(), z1),
                               all_gather_with_grad(*group(), z2), batch_slice().offset)
                     : nt_xent(z1, z2, options_.temperature());
  return out;
}

}  // namespace pretext::methods
