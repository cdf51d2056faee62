#pragma once

#include <cstdint>

#include <torch/nn/module.h>

namespace pretext::methods {

/// An encoder: images [B, C, H, W] -> features [B, feature_dim]. What every evaluation and export
/// sees of a trained method.
class BackboneImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;
  virtual int64_t feature_dim() const = 0;
};

}  // namespace pretext::methods

namespace pretext::methods {

/// Stores every 4-D parameter and buffer of `module` channels-last (NHWC). oneDNN's CPU
/// convolutions run about 25% faster on small-channel ResNets that way; feed inputs with
/// `.contiguous(torch::MemoryFormat::ChannelsLast)` to match.
void to_channels_last(torch::nn::Module& module);

}  // namespace pretext::methods
