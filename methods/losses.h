#pragma once

#include <torch/types.h>

namespace pretext::methods {

/// SimCLR's NT-Xent: for 2N projections, each one's positive is the other view of its image and
/// its negatives the other 2N - 2; cross-entropy over cosine similarities / temperature, averaged
/// over all 2N anchors. z1, z2: [N, D], row i of each from image i.
torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature);

}  // namespace pretext::methods
