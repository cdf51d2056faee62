#pragma once

#include <cstdint>
#include <string>

#include <torch/nn/module.h>

namespace pretext::methods {

/// An encoder: images [B, C, H, W] -> features [B, feature_dim]. What every evaluation and export
/// sees of a trained method.
class BackboneImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& images) = 0;
  virtual int64_t feature_dim() const = 0;
  /// Bands of the images it takes (what a decoder back to the image produces).
  virtual int64_t in_channels() const = 0;
  /// Depth of a parameter for layer-wise learning-rate decay in fine-tuning: 0 for the input stem
  /// up to layer_count() - 1 for the last stage or block.
  virtual int64_t layer_count() const { return 1; }
  virtual int64_t layer_of(const std::string& /*parameter_name*/) const { return 0; }
  /// A tensor of a saved state dict made to fit parameter `name` where its shape differs only in
  /// what the backbone can resample; undefined when it cannot (the default).
  virtual torch::Tensor fitted(const std::string& /*name*/, const torch::Tensor& /*saved*/) const {
    return {};
  }
};

}  // namespace pretext::methods

namespace pretext::methods {

/// Stores every 4-D parameter and buffer of `module` channels-last (NHWC). oneDNN's CPU
/// convolutions run about 25% faster on small-channel ResNets that way; feed inputs with
/// `.contiguous(torch::MemoryFormat::ChannelsLast)` to match.
void to_channels_last(torch::nn::Module& module);

}  // namespace pretext::methods
