#include "methods/losses.h"

#include <limits>

#include <torch/nn/functional.h>

namespace pretext::methods {
namespace F = torch::nn::functional;

torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature) {
  TORCH_CHECK(z1.sizes() == z2.sizes() && z1.dim() == 2, "nt_xent: views differ: ", z1.sizes(),
              " vs ", z2.sizes());
  const int64_t n = z1.size(0);
  const auto z = F::normalize(torch::cat({z1, z2}), F::NormalizeFuncOptions().dim(1));
  auto logits = torch::mm(z, z.t()) / temperature;
  // An anchor is never its own negative.
  logits = logits.masked_fill(torch::eye(2 * n, logits.options().dtype(torch::kBool)),
                              -std::numeric_limits<float>::infinity());
  const auto index = torch::arange(2 * n, torch::TensorOptions(torch::kInt64).device(z.device()));
  const auto positives = (index + n) % (2 * n);
  return F::cross_entropy(logits, positives);
}

}  // namespace pretext::methods
