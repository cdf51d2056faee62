#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "base/fields.h"
#include "methods/backbone.h"
#include "methods/batch_norm.h"

namespace pretext::methods {

/// ResNet layouts 18/34 (BasicBlock) and 50 (Bottleneck), any input bands, any width.
/// Parameter names follow torchvision's ResNet (conv1, bn1, layer1.0.conv1, ...; no fc), so an
/// exported state dict loads into torchvision.models.resnetXX with the fc removed.
///   ResNet net(ResNetOptions(18).in_channels(4).width_multiplier(0.25).small_stem(true));
struct ResNetOptions {
  explicit ResNetOptions(int64_t depth = 18) : depth_(depth) {}
  /// 18, 34 or 50.
  TORCH_ARG(int64_t, depth);
  /// Bands of the input images.
  TORCH_ARG(int64_t, in_channels) = 3;
  /// Stage widths are 64, 128, 256, 512 times this (0.25 gives 16-32-64-128).
  TORCH_ARG(double, width_multiplier) = 1.0;
  /// A 3x3 stride-1 first convolution and no max-pool, for images of 32 pixels and less.
  TORCH_ARG(bool, small_stem) = false;

 public:
  /// The fields a config sets (depth and in_channels come from the backbone name and the data).
  void visit_fields(FieldVisitor& visit);
};

/// One residual block; `bottleneck` selects 1x1-3x3-1x1 (expansion 4) over 3x3-3x3.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t in_planes, int64_t planes, int64_t stride, bool bottleneck);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  BatchNorm bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(ResidualBlock);

class ResNetImpl : public BackboneImpl {
 public:
  explicit ResNetImpl(const ResNetOptions& options);
  torch::Tensor forward(const torch::Tensor& images) override;  // [B, C, H, W] -> [B, D]
  int64_t feature_dim() const override { return feature_dim_; }
  int64_t in_channels() const override { return options_.in_channels(); }
  /// The stem (conv1, bn1) is layer 0, stage layerN is layer N.
  int64_t layer_count() const override { return 5; }
  int64_t layer_of(const std::string& parameter_name) const override;
  const ResNetOptions& options() const { return options_; }

 private:
  ResNetOptions options_;
  torch::nn::Conv2d conv1_{nullptr};
  BatchNorm bn1_{nullptr};
  std::vector<torch::nn::Sequential> layers_;
  int64_t feature_dim_ = 0;
};
TORCH_MODULE(ResNet);

}  // namespace pretext::methods
