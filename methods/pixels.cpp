#include "methods/pixels.h"

#include <torch/nn/functional.h>

namespace pretext::methods {
namespace F = torch::nn::functional;

void PixelsOptions::visit_fields(FieldVisitor& visit) { visit("size", size_, Check::at_least(1)); }

torch::Tensor PixelsImpl::forward(const torch::Tensor& images) {
  const auto resampled =
      images.size(2) == options_.size() && images.size(3) == options_.size()
          ? images
          : F::adaptive_avg_pool2d(
                images, F::AdaptiveAvgPool2dFuncOptions({options_.size(), options_.size()}));
  return resampled.flatten(1);
}

}  // namespace pretext::methods
