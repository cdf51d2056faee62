#include "methods/losses.h"

#include <limits>

#include <torch/nn/functional.h>

namespace pretext::methods {
namespace F = torch::nn::functional;

torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature) {
  return nt_xent(z1, z2, temperature, z1, z2, 0);
}

torch::Tensor nt_xent(const torch::Tensor& z1, const torch::Tensor& z2, double temperature,
                      const torch::Tensor& all1, const torch::Tensor& all2, int64_t offset) {
  TORCH_CHECK(z1.sizes() == z2.sizes() && z1.dim() == 2 && all1.sizes() == all2.sizes() &&
                  all1.size(1) == z1.size(1) && offset + z1.size(0) <= all1.size(0),
              "nt_xent: views differ: ", z1.sizes(), " vs ", z2.sizes(), " of ", all1.sizes());
  const int64_t n = z1.size(0), global = all1.size(0);
  const auto normalise = [](const torch::Tensor& z) {
    return F::normalize(z, F::NormalizeFuncOptions().dim(1));
  };
  const auto anchors = normalise(torch::cat({z1, z2}));
  // One process: the anchors are the whole batch (one normalisation, one path for the gradient).
  const bool whole = all1.is_same(z1) && all2.is_same(z2);
  const auto keys = whole ? anchors : normalise(torch::cat({all1, all2}));
  auto logits = torch::mm(anchors, keys.t()) / temperature;
  // Anchor i of view 1 is global row offset + i, of view 2 global + offset + i.
  const auto rows = torch::arange(n, torch::TensorOptions(torch::kInt64).device(z1.device()));
  const auto own = torch::cat({rows + offset, rows + offset + global});
  const auto positives = torch::cat({rows + offset + global, rows + offset});
  // An anchor is never its own negative.
  logits = logits.scatter(1, own.unsqueeze(1), -std::numeric_limits<float>::infinity());
  return F::cross_entropy(logits, positives);
}

torch::Tensor info_nce_with_queue(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& queue, double temperature) {
  TORCH_CHECK(q.sizes() == k.sizes() && q.dim() == 2 && queue.size(1) == q.size(1),
              "info_nce_with_queue: shapes ", q.sizes(), ", ", k.sizes(), ", queue ",
              queue.sizes());
  const auto qn = F::normalize(q, F::NormalizeFuncOptions().dim(1));
  const auto kn = F::normalize(k, F::NormalizeFuncOptions().dim(1)).detach();
  const auto positive = (qn * kn).sum(1, true);
  const auto negatives = torch::mm(qn, queue.detach().t());
  const auto logits = torch::cat({positive, negatives}, 1) / temperature;
  const auto labels =
      torch::zeros({q.size(0)}, torch::TensorOptions(torch::kInt64).device(q.device()));
  return F::cross_entropy(logits, labels);
}

torch::Tensor info_nce_in_batch(const torch::Tensor& q, const torch::Tensor& k, double temperature,
                                int64_t offset) {
  TORCH_CHECK(
      q.dim() == 2 && k.dim() == 2 && q.size(1) == k.size(1) && offset + q.size(0) <= k.size(0),
      "info_nce_in_batch: queries ", q.sizes(), " at row ", offset, " of keys ", k.sizes());
  const auto qn = F::normalize(q, F::NormalizeFuncOptions().dim(1));
  const auto kn = F::normalize(k, F::NormalizeFuncOptions().dim(1)).detach();
  const auto labels =
      torch::arange(q.size(0), torch::TensorOptions(torch::kInt64).device(q.device())) + offset;
  return F::cross_entropy(torch::mm(qn, kn.t()) / temperature, labels) * (2 * temperature);
}

torch::Tensor negative_cosine(const torch::Tensor& p, const torch::Tensor& z) {
  return -F::cosine_similarity(p, z.detach(), F::CosineSimilarityFuncOptions().dim(1)).mean();
}

torch::Tensor embedding_std(const torch::Tensor& z) {
  torch::NoGradGuard no_grad;
  return F::normalize(z, F::NormalizeFuncOptions().dim(1)).std(0).mean();
}

}  // namespace pretext::methods
