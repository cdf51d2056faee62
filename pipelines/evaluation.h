#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>
#include <torch/arg.h>

#include "base/fields.h"
#include "domains/augment.h"
#include "io/dataset.h"
#include "methods/backbone.h"

namespace pretext::pipelines {

/// The `eval` section: which labelled images each evaluation trains and scores on, and k-NN.
///   eval_split(labels_of(dataset, GroupBy::kAuto), EvalOptions().test_fraction(0.2), seed,
///              /*need_val=*/true);
struct EvalOptions {
  /// k-NN neighbour counts, all evaluated in one pass.
  TORCH_ARG(std::vector<int64_t>, k) = {20};
  /// k-NN votes are weighted exp(cosine similarity / temperature), as in InstDisc and DINO.
  TORCH_ARG(double, temperature) = 0.07;
  /// Catalog splits that train (k-NN bank, probe, fine-tune), select (LR sweep, early stopping)
  /// and score.
  TORCH_ARG(std::string, train_split) = "train";
  TORCH_ARG(std::string, val_split) = "val";
  TORCH_ARG(std::string, test_split) = "test";
  /// With no splits in the catalog, this fraction of each class's groups (chosen with the run
  /// seed) is held out as the test set.
  TORCH_ARG(double, test_fraction) = 0.2;
  /// When validation is needed and the catalog has no validation split, this fraction of each
  /// class's training groups is held out for it.
  TORCH_ARG(double, val_fraction) = 0.1;
  /// Images per forward pass when extracting features.
  TORCH_ARG(int64_t, batch_size) = 256;
  /// Hold-outs are drawn by group, stratified by each group's most common label, so that
  /// neighbouring slices of one patient, tiles of one slide or dates of one place never sit on
  /// both sides: "auto" (a manifest's group column, else the patient for DICOM, the series
  /// without a PatientID, the file for volumes and images, the slide, the place), "patient",
  /// "series", "slide", "place", "file", or "none" (every example on its own).
  TORCH_ARG(io::GroupBy, group_by) = io::GroupBy::kAuto;

 public:
  void visit_fields(FieldVisitor& visit);
};

/// Indices of the labelled examples each evaluation uses; disjoint.
struct EvalSplit {
  std::vector<int64_t> train, val, test;
  /// Groups in each part (an example without a group counts as one).
  int64_t train_groups = 0, val_groups = 0, test_groups = 0;
  /// Groups with examples in more than one part: only a catalog's own splits can do that.
  int64_t groups_across_parts = 0;
};

/// The class index (-1: unlabelled; for multi-label data the first of its labels), catalog split
/// ("" when none) and group of every example of a data set: what eval_split takes. Groups are
/// numbered 0, 1, ... in order of appearance (-1: the example stands alone; no groups at all: every
/// example does), so they carry nothing of what defined them (a patient) and may be stored.
struct ExampleLabels {
  std::vector<int64_t> labels;
  std::vector<std::string> splits;
  std::vector<int64_t> groups;
  /// Multi-label data only: every class index of each example, ascending.
  std::vector<std::vector<int64_t>> label_sets = {};
};
/// Throws InputError when the data has no such group (see io::Dataset::group_of).
ExampleLabels labels_of(const io::Dataset& dataset, io::GroupBy by = io::GroupBy::kNone);

/// The split of `examples` (labels -1 are never used): the catalog's splits when it has them,
/// else a hold-out of whole groups, stratified by each group's most common label and drawn with
/// `seed`. With `need_val`, a missing validation split is held out of the training groups.
/// Throws InputError when there are fewer than 2 classes or a needed part is empty.
EvalSplit eval_split(const ExampleLabels& examples, const EvalOptions& options, uint64_t seed,
                     bool need_val);

/// `count` of `members` drawn per class without replacement, reproducibly from `seed`: the
/// stratified draws behind hold-outs and few-label subsets. `labels[i]` is member i's class.
std::vector<int64_t> stratified_draw(const std::vector<int64_t>& members,
                                     const std::vector<int64_t>& labels,
                                     const std::function<int64_t(int64_t class_size)>& count,
                                     uint64_t seed);

/// Frozen features of a data set with what evaluation needs to split and score them. Saved as a
/// dict that Python's torch.load opens: {"features": float32 [N, D], "labels": int64 [N] (-1 for
/// unlabelled), "paths": [str], "splits": [str], "groups": int64 [N] (ExampleLabels::groups,
/// under eval.group_by), "classes": [str]}, and for multi-label data "targets": float32 [N, C].
struct FeatureSet {
  at::Tensor features;
  /// The class of each example (-1: none); for multi-label data its first label in class order,
  /// the key hold-outs stratify by.
  at::Tensor labels;
  /// Multi-label data only: 1 where example n has label c, else 0; undefined otherwise.
  at::Tensor targets;
  std::vector<std::string> paths, splits, class_names;
  std::vector<int64_t> groups;

  int64_t size() const { return features.defined() ? features.size(0) : 0; }
  std::vector<int64_t> label_list() const;
  /// Labels, splits and groups, for eval_split.
  ExampleLabels examples() const { return {label_list(), splits, groups}; }
  /// Rows `indices` of the features and labels.
  at::Tensor features_of(const std::vector<int64_t>& indices) const;
  at::Tensor labels_of(const std::vector<int64_t>& indices) const;
  /// Rows `indices` of the targets; undefined for single-label data.
  at::Tensor targets_of(const std::vector<int64_t>& indices) const;
};

/// Writes atomically. Throws InputError naming the file.
void save_features(const std::string& path, const FeatureSet& set);
/// Throws InputError naming the file when it is missing, not a feature file, or inconsistent.
FeatureSet load_features(const std::string& path);

/// Frozen features [N, D] (float32, CPU) of `indices` of `dataset`, seen as evaluation sees them
/// (domains::evaluation_view: first window, normalisation), in eval mode, with a progress display.
at::Tensor extract_features(methods::BackboneImpl& encoder,
                            std::shared_ptr<const io::Dataset> dataset,
                            const std::vector<int64_t>& indices,
                            const domains::AugmentOptions& augment, const c10::Device& device,
                            int64_t batch_size, int64_t workers);

/// The features of every image of `dataset` with their paths, labels, splits and groups under
/// `group_by`.
FeatureSet extract_feature_set(methods::BackboneImpl& encoder,
                               std::shared_ptr<const io::Dataset> dataset,
                               const domains::AugmentOptions& augment, const c10::Device& device,
                               int64_t batch_size, int64_t workers, io::GroupBy group_by);

}  // namespace pretext::pipelines
