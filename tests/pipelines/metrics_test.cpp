#include <limits>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "pipelines/metrics.h"

namespace pretext::pipelines {
namespace {

TEST(Metrics, MatchHandComputedValues) {
  // Truth 0 0 0 0 1 1 2 2 2 2; predictions 0 0 0 1 1 2 2 2 2 0.
  const auto labels = torch::tensor({0, 0, 0, 0, 1, 1, 2, 2, 2, 2}, torch::kInt64);
  const auto predicted = torch::tensor({0, 0, 0, 1, 1, 2, 2, 2, 2, 0}, torch::kInt64);
  const auto scores = torch::one_hot(predicted, 3).to(torch::kFloat32);
  const auto m = classification_metrics(scores, labels);
  EXPECT_EQ(m.count, 10);
  EXPECT_DOUBLE_EQ(m.top1, 0.7);
  // Recalls 3/4, 1/2, 3/4.
  EXPECT_DOUBLE_EQ(m.balanced_accuracy, (0.75 + 0.5 + 0.75) / 3);
  // F1 = 2TP / (2TP + FP + FN): class 0: 6/8, class 1: 2/4, class 2: 6/8.
  EXPECT_DOUBLE_EQ(m.macro_f1, (0.75 + 0.5 + 0.75) / 3);
  const std::vector<std::vector<int64_t>> confusion = {{3, 1, 0}, {0, 1, 1}, {1, 0, 3}};
  EXPECT_EQ(m.confusion, confusion);
  EXPECT_FALSE(m.auroc.has_value());  // not a binary task
}

TEST(Metrics, AurocCountsTiesAsHalf) {
  // Positives score 0.9, 0.5, 0.5; negatives 0.5, 0.1. Pairs (pos > neg): 0.9 beats both (2),
  // each 0.5 ties one negative (0.5) and beats 0.1 (1.5 each): 5 of 6.
  const auto scores = torch::tensor({0.9, 0.5, 0.5, 0.5, 0.1}, torch::kFloat64);
  const auto positive = torch::tensor({true, true, true, false, false});
  EXPECT_DOUBLE_EQ(*auroc(scores, positive), 5.0 / 6.0);
  EXPECT_FALSE(auroc(scores, torch::ones({5}, torch::kBool)).has_value());
  // A diverged model's NaN scores have no AUROC (and must not hang the tie grouping).
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(auroc(torch::tensor({nan, 0.5, nan, 0.2}), positive.slice(0, 1)).has_value());
}

TEST(Metrics, AurocEqualsTheFractionOfOrderedPairs) {
  torch::manual_seed(3);
  const auto scores = torch::randint(0, 20, {300}).to(torch::kFloat64);  // many ties
  const auto positive = torch::rand({300}) < 0.3;
  const auto s = scores.accessor<double, 1>();
  const auto p = positive.accessor<bool, 1>();
  double wins = 0, pairs = 0;
  for (int64_t i = 0; i < 300; ++i)
    for (int64_t j = 0; j < 300; ++j)
      if (p[i] && !p[j]) {
        pairs += 1;
        wins += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
      }
  EXPECT_NEAR(*auroc(scores, positive), wins / pairs, 1e-12);
}

TEST(Metrics, BinaryTasksReportAurocOfTheClassOneMargin) {
  const auto logits = torch::tensor({{2.0, 0.0}, {0.0, 1.0}, {0.5, 0.0}, {0.0, 3.0}});
  const auto labels = torch::tensor({0, 1, 1, 1}, torch::kInt64);
  const auto m = classification_metrics(logits, labels);
  // Margins -2, 1, -0.5, 3: the negative (-2) is below every positive.
  ASSERT_TRUE(m.auroc.has_value());
  EXPECT_DOUBLE_EQ(*m.auroc, 1.0);
  EXPECT_DOUBLE_EQ(m.top1, 0.75);
  EXPECT_DOUBLE_EQ(m.balanced_accuracy, (1.0 + 2.0 / 3.0) / 2);
}

// Six examples, three labels; the expected values are sklearn 1.2's average_precision_score and
// f1_score(average="micro" / "macro") on the decisions score > 0, and by hand: label 0 ranks
// 2 (+), {1 (-), 1 (+)} tied, 0.3 (+): AP = 1/3 * 1 + 1/3 * 2/3 + 1/3 * 3/4 = 29/36.
TEST(Metrics, MultiLabelAveragePrecisionAndF1MatchSklearn) {
  const auto scores = torch::tensor({{2.0, -1.0, 0.5},
                                     {1.0, 0.3, -0.2},
                                     {1.0, -2.0, 0.1},
                                     {-0.5, 0.8, -1.0},
                                     {-1.5, 0.2, 0.4},
                                     {0.3, -0.7, -0.3}});
  const auto targets = torch::tensor(
      {{1, 0, 1}, {0, 1, 0}, {1, 0, 0}, {0, 1, 1}, {0, 0, 1}, {1, 0, 0}}, torch::kFloat32);
  const auto m = multi_label_metrics(scores, targets);
  EXPECT_EQ(m.count, 6);
  ASSERT_EQ(m.average_precision.size(), 3u);
  EXPECT_NEAR(m.average_precision[0].value_or(-1), 0.8055555555555556, 1e-12);
  EXPECT_NEAR(m.average_precision[1].value_or(-1), 1.0, 1e-12);
  EXPECT_NEAR(m.average_precision[2].value_or(-1), 0.8333333333333333, 1e-12);
  EXPECT_NEAR(m.mean_average_precision, (0.8055555555555556 + 1.0 + 0.8333333333333333) / 3, 1e-12);
  EXPECT_NEAR(m.micro_f1, 0.7777777777777777, 1e-12);
  EXPECT_NEAR(m.macro_f1, 0.7746031746031745, 1e-12);

  // A label no example has gets no AP and stays out of the mean.
  const auto m2 = multi_label_metrics(torch::cat({scores, torch::zeros({6, 1})}, 1),
                                      torch::cat({targets, torch::zeros({6, 1})}, 1));
  EXPECT_FALSE(m2.average_precision[3].has_value());
  EXPECT_NEAR(m2.mean_average_precision, m.mean_average_precision, 1e-12);
}

}  // namespace
}  // namespace pretext::pipelines
