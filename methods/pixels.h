#pragma once

#include <cstdint>

#include <torch/arg.h>

#include "base/fields.h"
#include "methods/backbone.h"

namespace pretext::methods {

/// The image itself as the feature vector, area-resampled to size x size: the baseline that every
/// learned encoder has to beat in k-NN, linear probing and few-label fine-tuning. No parameters.
///   Pixels pixels(PixelsOptions().size(28).in_channels(1));  // 784-d features
struct PixelsOptions {
  /// Side in pixels; features are bands x size x size values.
  TORCH_ARG(int64_t, size) = 32;
  TORCH_ARG(int64_t, in_channels) = 3;

 public:
  void visit_fields(FieldVisitor& visit);
};

class PixelsImpl : public BackboneImpl {
 public:
  explicit PixelsImpl(const PixelsOptions& options) : options_(options) {}
  torch::Tensor forward(const torch::Tensor& images) override;
  int64_t feature_dim() const override {
    return options_.in_channels() * options_.size() * options_.size();
  }
  int64_t in_channels() const override { return options_.in_channels(); }

 private:
  PixelsOptions options_;
};
TORCH_MODULE(Pixels);

}  // namespace pretext::methods
