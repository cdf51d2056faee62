#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>
#include <torch/arg.h>

#include "base/fields.h"
#include "io/dataset.h"
#include "methods/backbone.h"

namespace pretext::pipelines {

/// The `eval` section: k-NN on frozen features.
///   knn_top1(train, train_labels, test, test_labels, KnnOptions().k({10, 20}).temperature(0.07));
struct KnnOptions {
  /// Neighbour counts, all evaluated in one pass.
  TORCH_ARG(std::vector<int64_t>, k) = {20};
  /// Votes are weighted exp(cosine similarity / temperature), as in InstDisc and DINO.
  TORCH_ARG(double, temperature) = 0.07;
  /// Splits of the catalog used as the memory bank and as queries.
  TORCH_ARG(std::string, train_split) = "train";
  TORCH_ARG(std::string, test_split) = "test";
  /// With no splits in the catalog, this fraction of each class (chosen with the run seed) is
  /// held out as queries.
  TORCH_ARG(double, test_fraction) = 0.2;
  /// Images per forward pass when extracting features.
  TORCH_ARG(int64_t, batch_size) = 256;

 public:
  void visit_fields(FieldVisitor& visit);
};

struct KnnScore {
  int64_t k = 0;
  double top1 = 0.0;  ///< fraction of queries whose weighted vote is their label
};

/// Frozen features [N, D] (float32, CPU) of `indices` of `dataset`, normalised like training
/// inputs, in eval mode, with a progress display.
at::Tensor extract_features(methods::BackboneImpl& encoder,
                            std::shared_ptr<const io::Dataset> dataset,
                            const std::vector<int64_t>& indices, const std::vector<double>& mean,
                            const std::vector<double>& std, const c10::Device& device,
                            int64_t batch_size, int64_t workers);

/// k-NN top-1 for every k: cosine similarity between L2-normalised features, the k most similar
/// bank entries vote with weight exp(sim / temperature). Labels are int64 class indices in
/// [0, classes).
std::vector<KnnScore> knn_top1(const at::Tensor& bank, const at::Tensor& bank_labels,
                               const at::Tensor& queries, const at::Tensor& query_labels,
                               const KnnOptions& options, int64_t classes);

/// The bank and query indices of a catalog: its train/test splits when it has them, else a
/// stratified hold-out of `test_fraction` drawn with `seed`. Throws InputError when the catalog
/// has no labels or a split is empty.
struct KnnSplit {
  std::vector<int64_t> bank, queries;
};
KnnSplit knn_split(const io::ImageDataset& dataset, const KnnOptions& options, uint64_t seed);

}  // namespace pretext::pipelines
