#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "pipelines/knn.h"

namespace pretext::pipelines {
namespace {

// k-NN by brute force over doubles: sort the bank by cosine similarity, weighted vote.
double knn_by_hand(const torch::Tensor& bank, const torch::Tensor& bank_labels,
                   const torch::Tensor& queries, const torch::Tensor& query_labels, int64_t k,
                   double temperature, int64_t classes) {
  const auto bt = bank.to(torch::kFloat64);
  const auto qt = queries.to(torch::kFloat64);
  const auto b = bt.accessor<double, 2>();
  const auto q = qt.accessor<double, 2>();
  const auto norm = [](const auto& row, int64_t d) {
    double s = 0;
    for (int64_t x = 0; x < d; ++x) s += row[x] * row[x];
    return std::sqrt(s);
  };
  const int64_t d = bt.size(1);
  int64_t correct = 0;
  for (int64_t i = 0; i < qt.size(0); ++i) {
    std::vector<std::pair<double, int64_t>> sims;
    for (int64_t j = 0; j < bt.size(0); ++j) {
      double dot = 0;
      for (int64_t x = 0; x < d; ++x) dot += q[i][x] * b[j][x];
      sims.push_back({dot / (norm(q[i], d) * norm(b[j], d)), bank_labels[j].item<int64_t>()});
    }
    std::sort(sims.begin(), sims.end(), [](auto& x, auto& y) { return x.first > y.first; });
    std::vector<double> votes(static_cast<size_t>(classes), 0.0);
    for (int64_t n = 0; n < k; ++n) votes[sims[n].second] += std::exp(sims[n].first / temperature);
    const auto best = std::max_element(votes.begin(), votes.end()) - votes.begin();
    correct += best == query_labels[i].item<int64_t>();
  }
  return static_cast<double>(correct) / qt.size(0);
}

TEST(Knn, MatchesABruteForceVote) {
  torch::manual_seed(4);
  // Three noisy clusters in 8 dimensions, noisy enough that some queries are wrong.
  const auto centres = torch::randn({3, 8});
  const auto bank_labels = torch::randint(0, 3, {200}, torch::kInt64);
  const auto query_labels = torch::randint(0, 3, {700}, torch::kInt64);
  const auto bank = centres.index_select(0, bank_labels) + 1.2 * torch::randn({200, 8});
  const auto queries = centres.index_select(0, query_labels) + 1.2 * torch::randn({700, 8});
  const auto options = EvalOptions().k({1, 5, 20}).temperature(0.1);
  const auto scores = knn_classify(bank, bank_labels, queries, query_labels, options, 3);
  ASSERT_EQ(scores.size(), 3u);
  for (const auto& score : scores) {
    const double expected = knn_by_hand(bank, bank_labels, queries, query_labels, score.k, 0.1, 3);
    EXPECT_NEAR(score.metrics.top1, expected, 1e-12) << "k=" << score.k;
    EXPECT_GT(score.metrics.top1, 0.4);
    EXPECT_LT(score.metrics.top1, 1.0);
  }
}

TEST(Knn, IsExactOnSeparableFeatures) {
  // Four classes on the axes of 4-D space with small positive noise: every nearest neighbour
  // shares the query's class, so every k up to the class size is right on every query.
  torch::manual_seed(1);
  const auto bank_labels = torch::arange(40, torch::kInt64).remainder(4);
  const auto query_labels = torch::arange(12, torch::kInt64).remainder(4);
  const auto axes = torch::eye(4);
  const auto bank = axes.index_select(0, bank_labels) + 0.05 * torch::rand({40, 4});
  const auto queries = axes.index_select(0, query_labels) + 0.05 * torch::rand({12, 4});
  const auto scores =
      knn_classify(bank, bank_labels, queries, query_labels, EvalOptions().k({1, 10}), 4);
  for (const auto& score : scores) {
    EXPECT_EQ(score.metrics.top1, 1.0) << "k=" << score.k;
    EXPECT_EQ(score.metrics.macro_f1, 1.0);
    EXPECT_EQ(score.metrics.confusion[2][2], 3);
  }
}

}  // namespace
}  // namespace pretext::pipelines
