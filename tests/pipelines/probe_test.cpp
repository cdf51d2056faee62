#include <gtest/gtest.h>
#include <torch/nn/functional.h>
#include <torch/optim/adam.h>
#include <torch/types.h>

#include <ATen/CPUGeneratorImpl.h>

#include "base/errors.h"
#include "pipelines/probe.h"

namespace pretext::pipelines {
namespace {

// Two noisy Gaussian classes in 6-D whose means differ along the first axis only.
LabelledFeatures two_classes(int64_t n, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto labels = torch::randint(0, 2, {n}, generator, torch::kInt64);
  auto features = torch::randn({n, 6}, generator);
  features.select(1, 0).add_(labels.to(torch::kFloat32) * 2.5 - 1.25);
  return {features * 3.0 + 1.0, labels};  // unstandardised on purpose
}

TEST(Probe, OneHeadIsTorchAdamOnALinearLayer) {
  const auto train = two_classes(300, 1), test = two_classes(100, 2);
  const auto options = ProbeOptions()
                           .lr({0.01})
                           .epochs(3)
                           .batch_size(64)
                           .optimizer(OptimizerKind::kAdam)
                           .standardize(false);
  const auto result = train_probes(train, {}, test, 2, options, 7);

  // The same start and batch order, drawn as train_probes draws them, through torch::optim::Adam.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(7);
  auto weights = (torch::randn({6, 2}, generator, torch::kFloat32) * 0.01).requires_grad_(true);
  auto bias = torch::zeros({2}).requires_grad_(true);
  torch::optim::Adam adam({weights, bias}, torch::optim::AdamOptions(0.01));
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    const auto order = torch::randperm(300, generator, torch::kInt64);
    for (int64_t start = 0; start < 300; start += 64) {
      const auto rows = order.slice(0, start, start + 64);
      const auto logits = train.features.index_select(0, rows).mm(weights) + bias;
      const auto loss =
          torch::nn::functional::cross_entropy(logits, train.labels.index_select(0, rows));
      adam.zero_grad();
      loss.backward();
      adam.step();
    }
  }
  EXPECT_TRUE(torch::allclose(result.weights[0], weights.detach(), 1e-4, 1e-5))
      << result.weights[0] << weights;
  EXPECT_TRUE(torch::allclose(result.bias[0], bias.detach(), 1e-4, 1e-5));
  EXPECT_GT(result.heads[0].test.top1, 0.8);
}

TEST(Probe, SweepPicksTheKnownBestLearningRate) {
  const auto train = two_classes(400, 3), val = two_classes(200, 4), test = two_classes(200, 5);
  // SGD for 2 epochs with weight decay 0.05: 1e-6 barely moves from the random start; at 1e4 the
  // decay term alone multiplies the weights by 1 - 1e4 * 0.05 = -499 per step until they
  // overflow; 0.01 learns.
  const std::vector<double> rates = {1e-6, 0.01, 1e4};
  const auto options = ProbeOptions()
                           .lr(rates)
                           .weight_decay({0.05})
                           .epochs(2)
                           .batch_size(50)
                           .optimizer(OptimizerKind::kSgd)
                           .standardize(false);
  const auto sweep = train_probes(train, val, test, 2, options, 11);
  ASSERT_EQ(sweep.heads.size(), 3u);
  EXPECT_EQ(sweep.heads[sweep.chosen].lr, 0.01);
  // Each head of the sweep is the probe trained alone with that learning rate.
  for (size_t h = 0; h < rates.size(); ++h) {
    const auto alone = train_probes(train, val, test, 2, ProbeOptions(options).lr({rates[h]}), 11);
    EXPECT_DOUBLE_EQ(alone.heads[0].val_top1, sweep.heads[h].val_top1) << rates[h];
    EXPECT_DOUBLE_EQ(alone.heads[0].test.top1, sweep.heads[h].test.top1) << rates[h];
  }
  EXPECT_GT(sweep.heads[1].val_top1, sweep.heads[0].val_top1 + 0.1);
  EXPECT_GT(sweep.heads[1].val_top1, sweep.heads[2].val_top1 + 0.1);
}

TEST(Probe, SweepWithoutValidationIsRefused) {
  const auto train = two_classes(50, 1);
  EXPECT_THROW(train_probes(train, {}, train, 2, ProbeOptions().lr({0.1, 0.01}), 0), ConfigError);
}

}  // namespace
}  // namespace pretext::pipelines
