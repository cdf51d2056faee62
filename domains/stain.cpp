#include "domains/stain.h"

#include <cmath>

#include <torch/types.h>

namespace pretext::domains {
namespace {

// [3, N] optical densities, float64.
torch::Tensor optical_density(const torch::Tensor& rgb) {
  return -((rgb.to(torch::kFloat64).flatten(1) + 1) / 256).log();
}

torch::Tensor percentile_of(const torch::Tensor& values, double q) {
  return torch::quantile(values, q, /*dim=*/c10::nullopt);
}

}  // namespace

torch::Tensor macenko_stain_matrix(const torch::Tensor& rgb, double od_threshold,
                                   double angle_percentile) {
  const auto od = optical_density(rgb);
  const auto tissue = od.mean(0) > od_threshold;
  TORCH_CHECK(tissue.sum().item<int64_t>() >= 10, "too few stained pixels to estimate stains");
  const auto pixels = od.index({torch::indexing::Slice(), tissue});  // [3, M]
  const auto centred = pixels - pixels.mean(1, true);
  const auto covariance = torch::matmul(centred, centred.t()) / (pixels.size(1) - 1);
  const auto eig = torch::linalg_eigh(covariance);  // ascending eigenvalues
  auto plane = std::get<1>(eig).index({torch::indexing::Slice(), torch::tensor({2, 1})});  // [3,2]
  for (int64_t c = 0; c < 2; ++c)
    if (plane[0][c].item<double>() < 0) plane.select(1, c).neg_();
  const auto projected = torch::matmul(plane.t(), pixels);  // [2, M]
  const auto angle = torch::atan2(projected[1], projected[0]);
  const double low = percentile_of(angle, (100 - angle_percentile) / 100).item<double>();
  const double high = percentile_of(angle, angle_percentile / 100).item<double>();
  auto first = torch::matmul(plane, torch::tensor({std::cos(low), std::sin(low)}, torch::kFloat64));
  auto second =
      torch::matmul(plane, torch::tensor({std::cos(high), std::sin(high)}, torch::kFloat64));
  // Haematoxylin absorbs more red than eosin.
  auto stains = first[0].item<double>() > second[0].item<double>() ? torch::stack({first, second})
                                                                   : torch::stack({second, first});
  return stains / stains.norm(2, 1, true);
}

torch::Tensor stain_concentrations(const torch::Tensor& rgb, const torch::Tensor& stains) {
  const auto od = optical_density(rgb);  // [3, N]
  // OD = stains^T C: least squares through the normal equations of the 3 x 2 system.
  const auto a = stains.t().to(torch::kFloat64);  // [3, 2]
  const auto c = torch::linalg_solve(torch::matmul(a.t(), a), torch::matmul(a.t(), od));
  return c.view({2, rgb.size(1), rgb.size(2)});
}

torch::Tensor macenko_normalise(const torch::Tensor& rgb, const torch::Tensor& reference_stains,
                                const torch::Tensor& reference_max) {
  const auto stains = macenko_stain_matrix(rgb);
  auto c = stain_concentrations(rgb, stains).flatten(1);  // [2, N]
  const auto source_max = torch::stack({percentile_of(c[0], 0.99), percentile_of(c[1], 0.99)});
  c = c * (reference_max.to(torch::kFloat64) / source_max).view({2, 1});
  const auto od = torch::matmul(reference_stains.t().to(torch::kFloat64), c);  // [3, N]
  return (256 * (-od).exp() - 1)
      .clamp(0, 255)
      .view({3, rgb.size(1), rgb.size(2)})
      .to(torch::kFloat32);
}

}  // namespace pretext::domains
