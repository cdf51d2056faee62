#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <set>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "pipelines/evaluation.h"
#include "pipelines/finetune.h"
#include "tests/io/test_data.h"

namespace pretext::pipelines {
namespace {

// 3 classes of 100, 50 and 20 examples.
std::vector<int64_t> imbalanced_labels() {
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 100; ++i) labels.push_back(0);
  for (int64_t i = 0; i < 50; ++i) labels.push_back(1);
  for (int64_t i = 0; i < 20; ++i) labels.push_back(2);
  return labels;
}

std::map<int64_t, int64_t> per_class(const std::vector<int64_t>& indices,
                                     const std::vector<int64_t>& labels) {
  std::map<int64_t, int64_t> counts;
  for (const int64_t i : indices) ++counts[labels[i]];
  return counts;
}

std::vector<int64_t> all_of(size_t n) {
  std::vector<int64_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = static_cast<int64_t>(i);
  return all;
}

TEST(FewLabelSubset, HasTheRightCountsPerClassAndIsReproducible) {
  const auto labels = imbalanced_labels();
  const auto train = all_of(labels.size());
  const auto k = FinetuneOptions().per_class(7);
  const auto a = few_label_subset(labels, train, k, 0);
  const std::map<int64_t, int64_t> seven = {{0, 7}, {1, 7}, {2, 7}};
  EXPECT_EQ(per_class(a, labels), seven);
  EXPECT_EQ(few_label_subset(labels, train, k, 0), a);
  EXPECT_NE(few_label_subset(labels, train, k, 1), a);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), a.size());  // no repeats

  // 10% of each class, at least one: 10, 5, 2.
  const auto fraction = few_label_subset(labels, train, FinetuneOptions().label_fraction(0.1), 3);
  const std::map<int64_t, int64_t> tenth = {{0, 10}, {1, 5}, {2, 2}};
  EXPECT_EQ(per_class(fraction, labels), tenth);
  // A class smaller than k gives all it has.
  const auto many = few_label_subset(labels, train, FinetuneOptions().per_class(30), 0);
  EXPECT_EQ(per_class(many, labels)[2], 20);
}

TEST(EvalSplit, HoldsOutStratifiedDisjointParts) {
  const auto labels = imbalanced_labels();
  const std::vector<std::string> no_splits(labels.size());
  const auto options = EvalOptions().test_fraction(0.2).val_fraction(0.1);
  const auto split = eval_split({labels, no_splits, {}}, options, 4, true);
  const std::map<int64_t, int64_t> test = {{0, 20}, {1, 10}, {2, 4}};
  EXPECT_EQ(per_class(split.test, labels), test);
  const std::map<int64_t, int64_t> val = {{0, 8}, {1, 4}, {2, 2}};  // 10% of 80, 40, 16
  EXPECT_EQ(per_class(split.val, labels), val);
  EXPECT_EQ(split.train.size() + split.val.size() + split.test.size(), labels.size());
  std::set<int64_t> seen(split.train.begin(), split.train.end());
  seen.insert(split.val.begin(), split.val.end());
  seen.insert(split.test.begin(), split.test.end());
  EXPECT_EQ(seen.size(), labels.size());
  EXPECT_TRUE(eval_split({labels, no_splits, {}}, options, 4, false).val.empty());
  // Without groups every example is its own: the same draw as groups of one.
  std::vector<int64_t> alone(labels.size());
  std::iota(alone.begin(), alone.end(), 0);
  EXPECT_EQ(eval_split({labels, no_splits, alone}, options, 4, true).test, split.test);
  EXPECT_EQ(split.test_groups, 34);
}

TEST(EvalSplit, HoldsOutWholeGroupsStratifiedByTheirLabel) {
  // 30 patients of 4 slices each, 20 of class 0 and 10 of class 1; patient 3 has one slice of
  // the other class (its majority decides).
  std::vector<int64_t> labels, groups;
  for (int64_t patient = 0; patient < 30; ++patient)
    for (int64_t slice = 0; slice < 4; ++slice) {
      labels.push_back(patient < 20 ? 0 : 1);
      groups.push_back(patient);
    }
  labels[3 * 4 + 1] = 1;
  const ExampleLabels examples{labels, std::vector<std::string>(labels.size()), groups};
  const auto split = eval_split(examples, EvalOptions().test_fraction(0.2).val_fraction(0.25), 7,
                                /*need_val=*/true);
  // 20% of each class's patients in test (4 and 2), 25% of the rest in val (4 and 2).
  EXPECT_EQ(split.test_groups, 6);
  EXPECT_EQ(split.val_groups, 6);
  EXPECT_EQ(split.train_groups, 18);
  EXPECT_EQ(split.groups_across_parts, 0);
  EXPECT_EQ(split.test.size(), 24u);
  std::map<int64_t, std::set<int>> sides;
  for (const int64_t i : split.train) sides[groups[i]].insert(0);
  for (const int64_t i : split.val) sides[groups[i]].insert(1);
  for (const int64_t i : split.test) sides[groups[i]].insert(2);
  EXPECT_EQ(sides.size(), 30u);
  for (const auto& [patient, parts] : sides) EXPECT_EQ(parts.size(), 1u) << "patient " << patient;
  // A catalog's own splits may put one group on two sides: counted, not hidden.
  std::vector<std::string> splits(labels.size(), "train");
  for (size_t i = 0; i < labels.size(); i += 2) splits[i] = "test";
  EXPECT_EQ(eval_split({labels, splits, groups}, EvalOptions(), 0, false).groups_across_parts, 30);
}

TEST(EvalSplit, UsesTheCatalogSplitsAndSkipsUnlabelled) {
  const std::vector<int64_t> labels = {0, 1, 0, 1, -1, 0, 1};
  const std::vector<std::string> splits = {"train", "train", "test", "test", "train", "val", "val"};
  const auto split = eval_split({labels, splits, {}}, EvalOptions(), 0, true);
  EXPECT_EQ(split.train, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(split.val, (std::vector<int64_t>{5, 6}));
  EXPECT_EQ(split.test, (std::vector<int64_t>{2, 3}));
  const std::vector<int64_t> one_class = {0, 0, 0};
  EXPECT_THROW(eval_split({one_class, {"", "", ""}, {}}, EvalOptions(), 0, false), InputError);
}

TEST(FeatureFile, RoundTripsAndRejectsOtherFiles) {
  testing::TempDir dir;
  FeatureSet set;
  set.features = torch::randn({3, 5});
  set.labels = torch::tensor({1, -1, 0}, torch::kInt64);
  set.paths = {"a.tif", "b,c.tif", "d.png"};
  set.splits = {"train", "", "test"};
  set.groups = {0, -1, 0};
  set.class_names = {"forest", "water"};
  const auto path = dir.path() + "/features.pt";
  save_features(path, set);
  const auto back = load_features(path);
  EXPECT_TRUE(torch::equal(back.features, set.features));
  EXPECT_TRUE(torch::equal(back.labels, set.labels));
  EXPECT_EQ(back.paths, set.paths);
  EXPECT_EQ(back.splits, set.splits);
  EXPECT_EQ(back.groups, set.groups);
  EXPECT_EQ(back.class_names, set.class_names);

  testing::write_text(dir.path() + "/junk.pt", "not a pickle");
  try {
    load_features(dir.path() + "/junk.pt");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a feature file"), std::string::npos)
        << e.what();
  }
  testing::truncate_file(path, 0.5);
  EXPECT_THROW(load_features(path), InputError);
}

TEST(FeatureFile, MultiLabelTargetsRoundTripAndMustBeZeroOrOne) {
  testing::TempDir dir;
  FeatureSet set;
  set.features = torch::randn({2, 4});
  set.labels = torch::tensor({0, 1}, torch::kInt64);
  set.paths = {"a.tif", "b.tif"};
  set.splits = {"", ""};
  set.groups = {-1, -1};
  set.class_names = {"forest", "water"};
  set.targets = torch::tensor({1.0F, 1.0F, 0.0F, 1.0F}).view({2, 2});
  const auto path = dir.path() + "/features.pt";
  save_features(path, set);
  EXPECT_TRUE(torch::equal(load_features(path).targets, set.targets));
  set.targets[1][0] = 0.5F;
  save_features(path, set);
  try {
    load_features(path);
    FAIL() << "a target of 0.5 was read";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("features.pt: a target is neither 0 nor 1"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace pretext::pipelines
