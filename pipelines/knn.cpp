#include "pipelines/knn.h"

#include <algorithm>
#include <map>

#include <torch/nn/functional.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "base/errors.h"
#include "domains/augment.h"
#include "domains/sampler.h"
#include "io/loader.h"
#include "pipelines/progress.h"

namespace pretext::pipelines {
namespace F = torch::nn::functional;

void KnnOptions::visit_fields(FieldVisitor& visit) {
  visit("k", k_, Check::at_least(1).non_empty());
  visit("temperature", temperature_, Check::above(0));
  visit("train_split", train_split_, Check::one_of({"train", "val", "test"}));
  visit("test_split", test_split_, Check::one_of({"train", "val", "test"}));
  visit("test_fraction", test_fraction_, Check::between(0.01, 0.99));
  visit("batch_size", batch_size_, Check::at_least(1));
}

torch::Tensor extract_features(methods::BackboneImpl& encoder,
                               std::shared_ptr<const io::Dataset> dataset,
                               const std::vector<int64_t>& indices, const std::vector<double>& mean,
                               const std::vector<double>& std, const c10::Device& device,
                               int64_t batch_size, int64_t workers) {
  const bool was_training = encoder.is_training();
  encoder.eval();
  torch::NoGradGuard no_grad;
  io::Loader loader(dataset, indices,
                    io::LoaderOptions().batch_size(batch_size).workers(workers).drop_last(false));
  std::vector<torch::Tensor> features;
  Progress progress("features of " + std::to_string(indices.size()) + " images", loader.batches());
  while (auto batch = loader.next()) {
    const auto images = domains::normalise(batch->pixels.to(device), mean, std);
    features.push_back(encoder.forward(images).to(torch::kCPU, torch::kFloat32));
    progress.update(batch->position + 1);
  }
  progress.finish();
  encoder.train(was_training);
  return torch::cat(features);
}

std::vector<KnnScore> knn_top1(const torch::Tensor& bank, const torch::Tensor& bank_labels,
                               const torch::Tensor& queries, const torch::Tensor& query_labels,
                               const KnnOptions& options, int64_t classes) {
  const auto& ks = options.k();
  const int64_t k_max = std::min<int64_t>(*std::max_element(ks.begin(), ks.end()), bank.size(0));
  const auto bank_n = F::normalize(bank, F::NormalizeFuncOptions().dim(1));
  const auto queries_n = F::normalize(queries, F::NormalizeFuncOptions().dim(1));
  std::vector<int64_t> correct(ks.size(), 0);
  constexpr int64_t kChunk = 512;  // queries per similarity block: [512, bank] floats
  for (int64_t start = 0; start < queries.size(0); start += kChunk) {
    const auto q = queries_n.slice(0, start, start + kChunk);
    const auto truth = query_labels.slice(0, start, start + kChunk);
    const auto [similarity, neighbour] = torch::mm(q, bank_n.t()).topk(k_max, 1);
    const auto neighbour_labels =
        bank_labels.index_select(0, neighbour.flatten()).view_as(neighbour);
    const auto weights = (similarity / options.temperature()).exp();
    for (size_t i = 0; i < ks.size(); ++i) {
      const int64_t k = std::min<int64_t>(ks[i], k_max);
      auto votes = torch::zeros({q.size(0), classes}, weights.options());
      votes.scatter_add_(1, neighbour_labels.slice(1, 0, k), weights.slice(1, 0, k));
      correct[i] += votes.argmax(1).eq(truth).sum().item<int64_t>();
    }
  }
  std::vector<KnnScore> scores;
  for (size_t i = 0; i < ks.size(); ++i)
    scores.push_back({ks[i], static_cast<double>(correct[i]) / queries.size(0)});
  return scores;
}

KnnSplit knn_split(const io::ImageDataset& dataset, const KnnOptions& options, uint64_t seed) {
  const auto& catalog = dataset.catalog();
  const auto& items = catalog.items();
  const std::string root = "the data set";
  if (dataset.class_names().size() < 2)
    throw InputError(root + " has " + std::to_string(dataset.class_names().size()) +
                     " labels; k-NN needs labelled images of at least 2 classes (class folders, or "
                     "a label column in the manifest)");
  KnnSplit split;
  if (catalog.has_splits()) {
    for (size_t i = 0; i < items.size(); ++i) {
      if (items[i].label.empty()) continue;
      if (items[i].split == options.train_split()) split.bank.push_back(static_cast<int64_t>(i));
      if (items[i].split == options.test_split()) split.queries.push_back(static_cast<int64_t>(i));
    }
  } else {
    // Stratified: within each class, a seeded shuffle and the first test_fraction as queries.
    std::map<std::string, std::vector<int64_t>> by_label;
    for (size_t i = 0; i < items.size(); ++i)
      if (!items[i].label.empty()) by_label[items[i].label].push_back(static_cast<int64_t>(i));
    for (auto& [label, members] : by_label) {
      const domains::EpochSampler shuffle(static_cast<int64_t>(members.size()), seed);
      const auto order = shuffle.order(0);
      const auto held_out = static_cast<size_t>(
          std::max<double>(1.0, std::round(options.test_fraction() * members.size())));
      for (size_t j = 0; j < order.size(); ++j)
        (j < held_out ? split.queries : split.bank).push_back(members[order[j]]);
    }
  }
  if (split.bank.empty() || split.queries.empty())
    throw InputError(root + " has " + std::to_string(split.bank.size()) + " labelled '" +
                     options.train_split() + "' images and " +
                     std::to_string(split.queries.size()) + " labelled '" + options.test_split() +
                     "' images; k-NN needs both");
  return split;
}

}  // namespace pretext::pipelines
