#include "pipelines/knn.h"

#include <algorithm>

#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/torch_compat.h"

namespace pretext::pipelines {
namespace F = torch::nn::functional;

std::vector<KnnScore> knn_classify(const torch::Tensor& bank, const torch::Tensor& bank_labels,
                                   const torch::Tensor& queries, const torch::Tensor& query_labels,
                                   const EvalOptions& options, int64_t classes,
                                   const c10::Device& device) {
  const auto& ks = options.k();
  const int64_t k_max = std::min<int64_t>(*std::max_element(ks.begin(), ks.end()), bank.size(0));
  const compat::ExactFp32 exact;
  const auto bank_n = F::normalize(bank.to(device), F::NormalizeFuncOptions().dim(1));
  const auto queries_n = F::normalize(queries.to(device), F::NormalizeFuncOptions().dim(1));
  const auto bank_labels_on_device = bank_labels.to(device);
  std::vector<std::vector<torch::Tensor>> votes(ks.size());
  constexpr int64_t kChunk = 512;  // queries per similarity block: [512, bank] floats
  for (int64_t start = 0; start < queries.size(0); start += kChunk) {
    const auto q = queries_n.slice(0, start, start + kChunk);
    const auto [similarity, neighbour] = torch::mm(q, bank_n.t()).topk(k_max, 1);
    const auto neighbour_labels =
        bank_labels_on_device.index_select(0, neighbour.flatten()).view_as(neighbour);
    const auto weights = (similarity / options.temperature()).exp();
    for (size_t i = 0; i < ks.size(); ++i) {
      const int64_t k = std::min<int64_t>(ks[i], k_max);
      auto chunk_votes = torch::zeros({q.size(0), classes}, weights.options());
      chunk_votes.scatter_add_(1, neighbour_labels.slice(1, 0, k), weights.slice(1, 0, k));
      votes[i].push_back(chunk_votes);
    }
  }
  std::vector<KnnScore> scores;
  for (size_t i = 0; i < ks.size(); ++i)
    scores.push_back({ks[i], classification_metrics(torch::cat(votes[i]).cpu(), query_labels)});
  return scores;
}

}  // namespace pretext::pipelines
