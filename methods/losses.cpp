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

torch::Tensor info_nce_in_batch(const torch::Tensor& q, const torch::Tensor& k,
                                double temperature) {
  TORCH_CHECK(q.sizes() == k.sizes() && q.dim() == 2,
              "info_nce_in_batch: views differ: ", q.sizes(), " vs ", k.sizes());
  const auto qn = F::normalize(q, F::NormalizeFuncOptions().dim(1));
  const auto kn = F::normalize(k, F::NormalizeFuncOptions().dim(1)).detach();
  const auto labels =
      torch::arange(q.size(0), torch::TensorOptions(torch::kInt64).device(q.device()));
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
