#include <utility>
#include <vector>

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

// A one-head probe trained by torch::optim::Adam on a linear layer from the same start and batch
// order, drawn as train_probes draws them: `lr` of each epoch, `targets` (multi-label, binary
// cross-entropy) when defined, else the labels (cross-entropy). Returns the weights and bias.
std::pair<torch::Tensor, torch::Tensor> adam_reference(const LabelledFeatures& train,
                                                       int64_t classes,
                                                       const std::vector<double>& lr,
                                                       int64_t batch_size, uint64_t seed) {
  const int64_t n = train.features.size(0), dim = train.features.size(1);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto weights =
      (torch::randn({dim, classes}, generator, torch::kFloat32) * 0.01).requires_grad_(true);
  auto bias = torch::zeros({classes}).requires_grad_(true);
  torch::optim::Adam adam({weights, bias}, torch::optim::AdamOptions(lr[0]));
  for (const double rate : lr) {
    static_cast<torch::optim::AdamOptions&>(adam.param_groups()[0].options()).lr(rate);
    const auto order = torch::randperm(n, generator, torch::kInt64);
    for (int64_t start = 0; start < n; start += batch_size) {
      const auto rows = order.slice(0, start, start + batch_size);
      const auto logits = train.features.index_select(0, rows).mm(weights) + bias;
      const auto loss =
          train.targets.defined()
              ? torch::nn::functional::binary_cross_entropy_with_logits(
                    logits, train.targets.index_select(0, rows))
              : torch::nn::functional::cross_entropy(logits, train.labels.index_select(0, rows));
      adam.zero_grad();
      loss.backward();
      adam.step();
    }
  }
  return {weights.detach(), bias.detach()};
}

// One head against torch::optim::Adam on a linear layer, under both learning-rate schedules: the
// cosine one as DINO's eval_linear (CosineAnnealingLR(T_max=epochs), stepped per epoch).
TEST(Probe, OneHeadIsTorchAdamOnALinearLayer) {
  const auto train = two_classes(300, 1), test = two_classes(100, 2);
  for (const auto schedule : {LrSchedule::kConstant, LrSchedule::kCosine}) {
    const auto options = ProbeOptions()
                             .lr({0.01})
                             .epochs(3)
                             .batch_size(64)
                             .optimizer(OptimizerKind::kAdam)
                             .schedule(schedule)
                             .standardize(false);
    const auto result = train_probes(train, {}, test, 2, options, 7);

    // Epochs 0, 1, 2 of 3: cos(0), cos(pi/3), cos(2pi/3) -> factors 1, 0.75, 0.25.
    const auto [weights, bias] =
        adam_reference(train, 2,
                       schedule == LrSchedule::kCosine ? std::vector<double>{0.01, 0.0075, 0.0025}
                                                       : std::vector<double>{0.01, 0.01, 0.01},
                       64, 7);
    EXPECT_TRUE(torch::allclose(result.weights[0], weights, 1e-4, 1e-5))
        << result.weights[0] << weights;
    EXPECT_TRUE(torch::allclose(result.bias[0], bias, 1e-4, 1e-5));
    EXPECT_GT(result.heads[0].test.top1, 0.8);
  }
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
    EXPECT_DOUBLE_EQ(alone.heads[0].val_score, sweep.heads[h].val_score) << rates[h];
    EXPECT_DOUBLE_EQ(alone.heads[0].test.top1, sweep.heads[h].test.top1) << rates[h];
  }
  EXPECT_GT(sweep.heads[1].val_score, sweep.heads[0].val_score + 0.1);
  EXPECT_GT(sweep.heads[1].val_score, sweep.heads[2].val_score + 0.1);
}

// Three labels in 6-D, label c present where feature c plus noise is positive: some examples have
// none, some several.
LabelledFeatures three_labels(int64_t n, uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  const auto features = torch::randn({n, 6}, generator);
  const auto noise = torch::randn({n, 3}, generator) * 0.3;
  const auto targets = (features.slice(1, 0, 3) + noise).gt(0).to(torch::kFloat32);
  return {features, torch::full({n}, -1, torch::kInt64), targets};
}

// The multi-label head is torch::optim::Adam on BCEWithLogitsLoss over a linear layer, and learns.
TEST(Probe, MultiLabelHeadIsTorchAdamOnLogisticRegressions) {
  const auto train = three_labels(400, 1), test = three_labels(200, 2);
  const auto options = ProbeOptions()
                           .lr({0.05})
                           .epochs(4)
                           .batch_size(64)
                           .optimizer(OptimizerKind::kAdam)
                           .schedule(LrSchedule::kConstant)
                           .standardize(false);
  const auto result = train_probes(train, {}, test, 3, options, 5);
  ASSERT_TRUE(result.multi_label);

  const auto [weights, bias] = adam_reference(train, 3, {0.05, 0.05, 0.05, 0.05}, 64, 5);
  EXPECT_TRUE(torch::allclose(result.weights[0], weights, 1e-4, 1e-5))
      << result.weights[0] << weights;
  EXPECT_TRUE(torch::allclose(result.bias[0], bias, 1e-4, 1e-5));
  const auto& m = result.heads[0].multi_label;
  ASSERT_EQ(m.average_precision.size(), 3u);
  for (const auto& ap : m.average_precision) EXPECT_GT(ap.value_or(0), 0.9);
  EXPECT_GT(m.micro_f1, 0.8);
  EXPECT_EQ(result.heads[0].test.count, 0);  // no single-label scores
}

TEST(Probe, SweepWithoutValidationIsRefused) {
  const auto train = two_classes(50, 1);
  EXPECT_THROW(train_probes(train, {}, train, 2, ProbeOptions().lr({0.1, 0.01}), 0), ConfigError);
}

}  // namespace
}  // namespace pretext::pipelines
