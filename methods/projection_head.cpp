#include "methods/projection_head.h"

#include "methods/batch_norm.h"

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>

namespace pretext::methods {
namespace nn = torch::nn;

ProjectionHeadImpl::ProjectionHeadImpl(const ProjectionHeadOptions& options) {
  int64_t width = options.in_dim();
  for (int64_t i = 0; i + 1 < options.layers(); ++i) {
    layers_->push_back(nn::Linear(nn::LinearOptions(width, options.hidden_dim()).bias(false)));
    layers_->push_back(BatchNorm(BatchNormOptions(options.hidden_dim())));
    layers_->push_back(nn::ReLU(true));
    width = options.hidden_dim();
  }
  layers_->push_back(nn::Linear(width, options.out_dim()));
  if (options.batch_norm_last())
    layers_->push_back(BatchNorm(BatchNormOptions(options.out_dim()).affine(false)));
  register_module("layers", layers_);
}

torch::Tensor ProjectionHeadImpl::forward(const torch::Tensor& features) {
  return layers_->forward(features);
}

}  // namespace pretext::methods
