#pragma once

// What the self-distillation short runs (DINO, iBOT) train on: 32 images of 8 colours with a
// little noise, in multi-crop views (16-pixel global crops, 8-pixel local ones).

#include <torch/types.h>

#include "domains/augment.h"

namespace pretext::methods::testing {

/// [32, 3, 16, 16] in [0, 1]: image i has colour i mod 8 (drawn from the global generator).
inline torch::Tensor colour_images() {
  const auto colours = torch::rand({8, 3, 1, 1});
  return (colours.repeat({4, 1, 16, 16}) + torch::rand({32, 3, 16, 16}) * 0.2).clamp(0, 1);
}

inline domains::ViewAugment multi_crop_augment() {
  return domains::ViewAugment(domains::AugmentOptions()
                                  .size(16)
                                  .local_size(8)
                                  .crop_scale_min(0.5)
                                  .jitter_p(0)
                                  .blur_p(0)
                                  .mean({0.5})
                                  .std({0.25}));
}

}  // namespace pretext::methods::testing
