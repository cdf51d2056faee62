#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "methods/losses.h"

namespace pretext::methods {
namespace {

// NT-Xent written out with loops over plain doubles, as the SimCLR paper states it.
double nt_xent_by_hand(const std::vector<std::vector<double>>& a,
                       const std::vector<std::vector<double>>& b, double temperature) {
  std::vector<std::vector<double>> z = a;
  z.insert(z.end(), b.begin(), b.end());
  for (auto& v : z) {
    double norm = 0;
    for (double x : v) norm += x * x;
    for (double& x : v) x /= std::sqrt(norm);
  }
  const size_t n = a.size();
  double total = 0;
  for (size_t i = 0; i < 2 * n; ++i) {
    const size_t positive = (i + n) % (2 * n);
    double denominator = 0, numerator = 0;
    for (size_t k = 0; k < 2 * n; ++k) {
      if (k == i) continue;
      double sim = 0;
      for (size_t d = 0; d < z[i].size(); ++d) sim += z[i][d] * z[k][d];
      denominator += std::exp(sim / temperature);
      if (k == positive) numerator = std::exp(sim / temperature);
    }
    total += -std::log(numerator / denominator);
  }
  return total / (2 * n);
}

TEST(NtXent, EqualsTheValueComputedByHand) {
  const std::vector<std::vector<double>> a = {{1, 0, 2}, {0.5, -1, 0}, {3, 1, 1}};
  const std::vector<std::vector<double>> b = {{0.9, 0.2, 1.5}, {0, -2, 0.3}, {-1, 1, 0}};
  const auto to_tensor = [](const std::vector<std::vector<double>>& rows) {
    auto t = torch::empty({static_cast<int64_t>(rows.size()), 3}, torch::kFloat64);
    for (size_t i = 0; i < rows.size(); ++i)
      for (size_t j = 0; j < 3; ++j) t[i][j] = rows[i][j];
    return t;
  };
  for (double temperature : {0.1, 0.5, 1.0}) {
    const double expected = nt_xent_by_hand(a, b, temperature);
    EXPECT_NEAR(nt_xent(to_tensor(a), to_tensor(b), temperature).item<double>(), expected, 1e-9);
  }
}

TEST(NtXent, RanksOfTheGlobalBatchAverageToItsLoss) {
  // Two ranks' anchors (rows 0-2 and 3-5) against the global batch's projections: the mean of
  // their losses is the loss of the whole batch, though the two differ.
  torch::manual_seed(4);
  const auto z1 = torch::randn({6, 5}, torch::kFloat64), z2 = torch::randn({6, 5}, torch::kFloat64);
  const double t = 0.3;
  const auto first = nt_xent(z1.narrow(0, 0, 3), z2.narrow(0, 0, 3), t, z1, z2, 0);
  const auto second = nt_xent(z1.narrow(0, 3, 3), z2.narrow(0, 3, 3), t, z1, z2, 3);
  EXPECT_NEAR(((first + second) / 2).item<double>(), nt_xent(z1, z2, t).item<double>(), 1e-12);
  EXPECT_GT(std::abs((first - second).item<double>()), 1e-6);
}

TEST(NtXent, IdenticalViewsOfOrthogonalImagesGiveTheLowerBound) {
  // Positives at similarity 1, every negative at 0: loss = -log(e^(1/t) / (e^(1/t) + 2n - 2)).
  const auto z = torch::eye(4, torch::kFloat64);
  const double t = 0.5;
  const double expected = -std::log(std::exp(1 / t) / (std::exp(1 / t) + 6));
  EXPECT_NEAR(nt_xent(z, z, t).item<double>(), expected, 1e-9);
}

}  // namespace
}  // namespace pretext::methods
