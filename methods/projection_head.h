#pragma once

#include <cstdint>

#include <torch/arg.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

namespace pretext::methods {

/// Linear-BN-ReLU blocks then a Linear; the projectors and predictors of the contrastive and
/// siamese methods.
///   ProjectionHead head(ProjectionHeadOptions(512, 128).hidden_dim(512).layers(2));
struct ProjectionHeadOptions {
  ProjectionHeadOptions(int64_t in_dim, int64_t out_dim) : in_dim_(in_dim), out_dim_(out_dim) {}
  /// Width of the encoder features fed in.
  TORCH_ARG(int64_t, in_dim);
  /// Width of the projection the loss sees.
  TORCH_ARG(int64_t, out_dim);
  /// Width of the hidden layers.
  TORCH_ARG(int64_t, hidden_dim) = 2048;
  /// Linear layers in all (1: a single Linear).
  TORCH_ARG(int64_t, layers) = 2;
  /// A BatchNorm without affine parameters after the last Linear (SimSiam's projector).
  TORCH_ARG(bool, batch_norm_last) = false;
};

class ProjectionHeadImpl : public torch::nn::Module {
 public:
  explicit ProjectionHeadImpl(const ProjectionHeadOptions& options);
  torch::Tensor forward(const torch::Tensor& features);  // [B, in] -> [B, out]

 private:
  torch::nn::Sequential layers_;
};
TORCH_MODULE(ProjectionHead);

}  // namespace pretext::methods
