#include "methods/masking.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

#include "methods/step_random.h"

namespace pretext::methods {
namespace {

// An integer uniform in [a, b], as Python's random.randint.
int64_t uniform_int(at::Generator& generator, int64_t a, int64_t b) {
  return std::min(b, a + static_cast<int64_t>(uniform(generator, 0, 1) * (b - a + 1)));
}

}  // namespace

double uniform(at::Generator& generator, double a, double b) {
  auto* cpu = at::check_generator<at::CPUGeneratorImpl>(generator);
  const double u = static_cast<double>(cpu->random64() >> 11) * 0x1.0p-53;
  return a + (b - a) * u;
}

at::Tensor block_masks(int64_t batch, int64_t grid, int64_t scale, double ratio,
                       const at::Generator& generator, const BatchSlice& slice) {
  const int64_t side = grid / scale, blocks = side * side;
  const auto hidden = static_cast<int64_t>(std::ceil(static_cast<double>(blocks) * ratio));
  // A random permutation of the blocks per image, the first `hidden` of it masked.
  const auto order = uniform_rows(generator, slice, batch, {blocks}).argsort(1, false);
  auto mask = torch::zeros({batch, blocks}, torch::kFloat32);
  mask.scatter_(1, order.slice(1, 0, hidden), 1.0);
  return mask.view({batch, side, side})
      .repeat_interleave(scale, 1)
      .repeat_interleave(scale, 2)
      .reshape({batch, grid * grid});
}

at::Tensor block_mask(int64_t grid, double target, double min_block, double aspect,
                      at::Generator& generator) {
  std::vector<uint8_t> mask(static_cast<size_t>(grid * grid), 0);
  const double low = min_block;
  const double log_low = std::log(aspect), log_high = -std::log(aspect);
  double hidden = 0;
  while (hidden < target) {
    const double left_to_hide = target - hidden;
    int64_t delta = 0;
    for (int attempt = 0; attempt < 10 && delta == 0; ++attempt) {
      const double area = uniform(generator, low, left_to_hide);
      const double ratio = std::exp(uniform(generator, log_low, log_high));
      const auto h = static_cast<int64_t>(std::llround(std::sqrt(area * ratio)));
      const auto w = static_cast<int64_t>(std::llround(std::sqrt(area / ratio)));
      if (w >= grid || h >= grid) continue;
      const int64_t top = uniform_int(generator, 0, grid - h);
      const int64_t left = uniform_int(generator, 0, grid - w);
      int64_t already = 0;
      for (int64_t i = top; i < top + h; ++i)
        for (int64_t j = left; j < left + w; ++j) already += mask[i * grid + j];
      const int64_t fresh = h * w - already;
      if (fresh <= 0 || static_cast<double>(fresh) > left_to_hide) continue;
      for (int64_t i = top; i < top + h; ++i)
        for (int64_t j = left; j < left + w; ++j) mask[i * grid + j] = 1;
      delta = fresh;
    }
    if (delta == 0) break;
    hidden += static_cast<double>(delta);
  }
  return torch::tensor(std::vector<float>(mask.begin(), mask.end()));
}

at::Tensor block_mask_rows(int64_t batch, int64_t grid, double ratio, double min_block,
                           double aspect, at::Generator generator, const BatchSlice& slice) {
  const int64_t rows = slice.global_rows(batch);
  std::vector<at::Tensor> all;
  for (int64_t image = 0; image < rows; ++image)
    all.push_back(
        block_mask(grid, ratio * static_cast<double>(grid * grid), min_block, aspect, generator));
  return torch::stack(all).narrow(0, slice.offset, batch);
}

}  // namespace pretext::methods
