#include "methods/momentum.h"

#include <algorithm>
#include <cmath>

#include <torch/types.h>

namespace pretext::methods {

void copy_weights(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto parameters = from.named_parameters();
  for (auto& item : to.named_parameters()) item.value().copy_(parameters[item.key()]);
  auto buffers = from.named_buffers();
  for (auto& item : to.named_buffers()) item.value().copy_(buffers[item.key()]);
}

void MomentumPairs::add(torch::nn::Module& online, torch::nn::Module& target) {
  copy_weights(online, target);
  auto parameters = online.named_parameters();
  for (auto& item : target.named_parameters()) {
    item.value().requires_grad_(false);
    // The same tensors for the whole run: moving a module (to(device)) and loading weights
    // replace a parameter's data, not the parameter.
    online_.push_back(parameters[item.key()]);
    target_.push_back(item.value());
  }
}

void MomentumPairs::update(double m) {
  torch::NoGradGuard no_grad;
  torch::_foreach_mul_(target_, m);
  torch::_foreach_add_(target_, online_, 1 - m);
}

double cosine_momentum(double start, int64_t step, int64_t total) {
  const double progress = total > 0 ? std::min(1.0, static_cast<double>(step) / total) : 1.0;
  return 1.0 - (1.0 - start) * (std::cos(M_PI * progress) + 1.0) / 2.0;
}

MomentumMethodImpl::MomentumMethodImpl(std::shared_ptr<BackboneImpl> backbone,
                                       std::shared_ptr<BackboneImpl> momentum_backbone,
                                       ProjectionHeadOptions projector,
                                       int64_t predictor_hidden_dim, double momentum)
    : backbone_(std::move(backbone)),
      momentum_backbone_(std::move(momentum_backbone)),
      momentum_(momentum) {
  register_module("backbone", backbone_);
  register_module("momentum_backbone", momentum_backbone_);
  projector.in_dim(backbone_->feature_dim());
  projector_ = register_module("projector", ProjectionHead(projector));
  momentum_projector_ = register_module("momentum_projector", ProjectionHead(projector));
  if (predictor_hidden_dim > 0)
    predictor_ = register_module(
        "predictor", ProjectionHead(ProjectionHeadOptions(projector.out_dim(), projector.out_dim())
                                        .hidden_dim(predictor_hidden_dim)
                                        .layers(2)));
  momentum_pairs_.add(*backbone_, *momentum_backbone_);
  momentum_pairs_.add(*projector_, *momentum_projector_);
}

void MomentumMethodImpl::sync_encoder_copies() { copy_weights(*backbone_, *momentum_backbone_); }

torch::Tensor MomentumMethodImpl::online(const torch::Tensor& views) {
  auto z = projector_->forward(backbone_->forward(views));
  return predictor_ ? predictor_->forward(z) : z;
}

torch::Tensor MomentumMethodImpl::target(const torch::Tensor& views) {
  torch::NoGradGuard no_grad;
  return momentum_projector_->forward(momentum_backbone_->forward(views));
}

void MomentumMethodImpl::after_optimizer_step(int64_t step, int64_t total_steps) {
  const double m = cosine_momentum(momentum_, step, total_steps);
  momentum_pairs_.update(m);
}

}  // namespace pretext::methods
