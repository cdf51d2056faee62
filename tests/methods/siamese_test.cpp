// MoCo v2 / v3, BYOL, SimSiam, Barlow Twins and VICReg: losses against direct computations, the
// MoCo queue's bookkeeping, momentum updates, and short runs that lower the loss without collapse.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "domains/augment.h"
#include "methods/byol.h"
#include "methods/decorrelation.h"
#include "methods/losses.h"
#include "methods/moco.h"
#include "methods/resnet.h"
#include "methods/simsiam.h"

namespace pretext::methods {
namespace {

std::shared_ptr<BackboneImpl> tiny_resnet() {
  return std::make_shared<ResNetImpl>(
      ResNetOptions(18).width_multiplier(0.125).small_stem(true).in_channels(3));
}

// Cosine similarity of two rows, by hand.
double cosine(const torch::Tensor& a, const torch::Tensor& b) {
  double dot = 0, na = 0, nb = 0;
  for (int64_t i = 0; i < a.size(0); ++i) {
    const double x = a[i].item<double>(), y = b[i].item<double>();
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / std::sqrt(na * nb);
}

TEST(Moco, QueueLossIsCrossEntropyAgainstTheKeyAndTheQueue) {
  torch::manual_seed(0);
  const auto q = torch::randn({3, 4}), k = torch::randn({3, 4});
  const auto queue = torch::nn::functional::normalize(
      torch::randn({5, 4}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const double t = 0.2;
  double expected = 0;
  for (int64_t i = 0; i < 3; ++i) {
    const double positive = std::exp(cosine(q[i], k[i]) / t);
    double all = positive;
    for (int64_t j = 0; j < 5; ++j) all += std::exp(cosine(q[i], queue[j]) / t);
    expected += -std::log(positive / all) / 3;
  }
  EXPECT_NEAR(info_nce_with_queue(q, k, queue, t).item<double>(), expected, 1e-5);
}

TEST(Moco, InBatchLossUsesTheOtherKeysAsNegatives) {
  torch::manual_seed(1);
  const auto q = torch::randn({4, 6}), k = torch::randn({4, 6});
  const double t = 0.5;
  double expected = 0;
  for (int64_t i = 0; i < 4; ++i) {
    double all = 0;
    for (int64_t j = 0; j < 4; ++j) all += std::exp(cosine(q[i], k[j]) / t);
    expected += -std::log(std::exp(cosine(q[i], k[i]) / t) / all) / 4;
  }
  EXPECT_NEAR(info_nce_in_batch(q, k, t).item<double>(), expected * 2 * t, 1e-5);
}

TEST(Siamese, NegativeCosineHoldsTheTargetConstant) {
  torch::manual_seed(2);
  const auto p = torch::randn({3, 5}, torch::requires_grad());
  const auto z = torch::randn({3, 5}, torch::requires_grad());
  double expected = 0;
  for (int64_t i = 0; i < 3; ++i) expected -= cosine(p[i], z[i]) / 3;
  const auto loss = negative_cosine(p, z);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-6);
  loss.backward();
  EXPECT_TRUE(p.grad().defined());
  EXPECT_FALSE(z.grad().defined());  // stop-gradient
  // 1/sqrt(D) for spread rows, 0 for identical rows.
  EXPECT_NEAR(embedding_std(torch::eye(64)).item<double>(), 0.125, 0.01);
  EXPECT_NEAR(embedding_std(torch::ones({8, 16})).item<double>(), 0.0, 1e-7);
}

TEST(Moco, QueueTakesBothViewsKeysOldestFirstAndWrapsAround) {
  torch::manual_seed(3);
  MocoImpl moco(tiny_resnet(), tiny_resnet(),
                MocoOptions().version(2).projection_dim(8).projection_hidden_dim(16).queue_size(5));
  auto buffers = moco.named_buffers();
  ASSERT_TRUE(buffers.contains("queue"));  // saved with the module, so kept in checkpoints
  ASSERT_TRUE(buffers.contains("queue_position"));
  const auto unit = [](const torch::Tensor& x) { return x / x.norm(2, 1, true); };
  const auto a = torch::rand({2, 3, 16, 16}), b = torch::rand({2, 3, 16, 16});
  auto before = moco.queue().clone();
  moco.step({a, b});
  // Rows 0-3: keys of view 1 then view 2 (the momentum encoder equals the online one before any
  // update; in training mode both see the same batch statistics); row 4 untouched.
  torch::Tensor keys;
  {
    torch::NoGradGuard no_grad;
    keys = unit(torch::cat({moco.target(a), moco.target(b)}));
  }
  EXPECT_TRUE(torch::allclose(moco.queue().slice(0, 0, 4), keys, 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(moco.queue()[4], before[4]));
  EXPECT_EQ(buffers["queue_position"].item<int64_t>(), 4);
  // The next four keys go to rows 4, 0, 1, 2; row 3 keeps the last key of the first batch.
  before = moco.queue().clone();
  const auto c = torch::rand({2, 3, 16, 16}), d = torch::rand({2, 3, 16, 16});
  moco.step({c, d});
  {
    torch::NoGradGuard no_grad;
    keys = unit(torch::cat({moco.target(c), moco.target(d)}));
  }
  EXPECT_TRUE(torch::allclose(moco.queue()[4], keys[0], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(moco.queue().slice(0, 0, 3), keys.slice(0, 1), 1e-5, 1e-6));
  EXPECT_TRUE(torch::equal(moco.queue()[3], before[3]));
  EXPECT_EQ(buffers["queue_position"].item<int64_t>(), 3);
}

TEST(Moco, ShuffleBnGivesEachSubBatchItsOwnStatistics) {
  torch::manual_seed(5);
  torch::nn::BatchNorm1d norm(2);  // training mode: each call normalises by its own rows
  const auto x = torch::randn({8, 2}) * 3 + 1;
  const auto order = torch::randperm(8, torch::kInt64);
  const auto out =
      forward_in_splits([&](const torch::Tensor& rows) { return norm(rows); }, x, 4, order);
  for (int64_t part = 0; part < 4; ++part) {
    const auto rows = order.slice(0, 2 * part, 2 * part + 2);
    EXPECT_TRUE(torch::allclose(out.index_select(0, rows), norm(x.index_select(0, rows))));
  }
  // Never a part of one row: 5 rows in at most 2 parts.
  int64_t calls = 0;
  forward_in_splits(
      [&](const torch::Tensor& rows) {
        ++calls;
        EXPECT_GE(rows.size(0), 2);
        return rows;
      },
      torch::randn({5, 2}), 8, torch::arange(5));
  EXPECT_EQ(calls, 2);

  // MoCo v2's keys (as queued) come from shuffled sub-batches: not the whole batch's statistics,
  // unless it runs as one batch.
  const auto unit = [](const torch::Tensor& t) { return t / t.norm(2, 1, true); };
  const auto a = torch::rand({8, 3, 16, 16}), b = torch::rand({8, 3, 16, 16});
  for (const int64_t splits : {4, 1}) {
    torch::manual_seed(6);
    MocoImpl moco(
        tiny_resnet(), tiny_resnet(),
        MocoOptions().projection_dim(8).projection_hidden_dim(16).queue_size(64).shuffle_bn_splits(
            splits));
    moco.step({a, b});
    torch::Tensor whole_batch;
    {
      torch::NoGradGuard no_grad;
      whole_batch = unit(moco.target(a));
    }
    EXPECT_EQ(torch::allclose(moco.queue().slice(0, 0, 8), whole_batch, 1e-4, 1e-5), splits == 1)
        << splits;
  }
}

TEST(Moco, KeyEncoderFollowsTheQueryEncoderByMomentum) {
  torch::manual_seed(4);
  ByolImpl byol(tiny_resnet(), tiny_resnet(), ByolOptions().momentum(0.9));
  auto online = byol.encoder()->named_parameters();
  auto target = byol.momentum_encoder()->named_parameters();
  for (const auto& item : online)
    EXPECT_TRUE(torch::equal(item.value(), target[item.key()])) << item.key();
  for (const auto& item : target) EXPECT_FALSE(item.value().requires_grad());
  const auto key = online.begin()->key();
  const auto before = target[key].clone();
  {
    torch::NoGradGuard no_grad;
    online[key].add_(1.0);
  }
  byol.after_optimizer_step(0, 10);  // cosine schedule at step 0: the start, 0.9
  EXPECT_TRUE(torch::allclose(target[key], before * 0.9 + online[key] * 0.1, 1e-6, 1e-6));
}

// Column j of [N, D] `z` as numbers.
std::vector<double> column(const torch::Tensor& z, int64_t j) {
  std::vector<double> out;
  for (int64_t i = 0; i < z.size(0); ++i) out.push_back(z[i][j].item<double>());
  return out;
}

double mean_of(const std::vector<double>& x) {
  return std::accumulate(x.begin(), x.end(), 0.0) / static_cast<double>(x.size());
}

// Sum over rows of (a_i - mean a)(b_i - mean b).
double co_moment(const std::vector<double>& a, const std::vector<double>& b) {
  const double ma = mean_of(a), mb = mean_of(b);
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += (a[i] - ma) * (b[i] - mb);
  return sum;
}

TEST(BarlowTwins, LossIsTheCrossCorrelationsDistanceToTheIdentity) {
  torch::manual_seed(3);
  const auto z1 = torch::randn({5, 3}, torch::kFloat64), z2 = torch::randn({5, 3}, torch::kFloat64);
  const double lambda = 0.2, n = 5;
  double expected = 0;
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      const auto a = column(z1, i), b = column(z2, j);
      // Standardised with the biased variance and BatchNorm's eps.
      const double c = co_moment(a, b) / n /
                       std::sqrt((co_moment(a, a) / n + 1e-5) * (co_moment(b, b) / n + 1e-5));
      expected += i == j ? (1 - c) * (1 - c) : lambda * c * c;
    }
  EXPECT_NEAR(barlow_twins_loss(z1, z2, lambda).item<double>(), expected, 1e-9);
  // The paper's lambda at any width by default; 0 scales it to the projector width.
  EXPECT_DOUBLE_EQ(BarlowTwinsOptions().projection_dim(2048).lambda(), 0.0051);
  EXPECT_DOUBLE_EQ(BarlowTwinsOptions().projection_dim(2048).off_diagonal_weight(0).lambda(),
                   0.0051 * 4);
  EXPECT_DOUBLE_EQ(BarlowTwinsOptions().off_diagonal_weight(0).lambda(), 0.0051);
}

TEST(VicReg, LossIsInvarianceVarianceAndCovarianceWithThePapersWeights) {
  torch::manual_seed(4);
  const auto z1 = torch::randn({6, 4}, torch::kFloat64) * 0.5;
  const auto z2 = z1 + torch::randn({6, 4}, torch::kFloat64) * 0.3;
  const double n = 6, d = 4;
  double invariance = 0, variance = 0, covariance = 0;
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 4; ++j)
      invariance += std::pow(z1[i][j].item<double>() - z2[i][j].item<double>(), 2) / (n * d);
  for (const auto* z : {&z1, &z2})
    for (int64_t i = 0; i < 4; ++i) {
      const auto a = column(*z, i);
      // The unbiased variance; the hinge keeps each dimension's deviation at 1 or more.
      variance += std::max(0.0, 1 - std::sqrt(co_moment(a, a) / (n - 1) + 1e-4)) / d / 2;
      for (int64_t j = 0; j < 4; ++j)
        if (j != i) covariance += std::pow(co_moment(a, column(*z, j)) / (n - 1), 2) / d;
    }
  EXPECT_NEAR(vicreg_loss(z1, z2, VicRegOptions()).item<double>(),
              25 * invariance + 25 * variance + covariance, 1e-9);
  EXPECT_GT(variance, 0);  // the case exercises the hinge
}

// Trains `method` for `steps` on 32 images of 8 colours with crops and flips; returns the mean
// loss and embedding_std over the first and the last 10 steps.
struct Run {
  double first_loss = 0, last_loss = 0, last_std = 0;
};
Run short_run(MethodImpl& method, int64_t steps, double lr) {
  torch::optim::AdamW optimizer(method.parameters(),
                                torch::optim::AdamWOptions(lr).weight_decay(1e-4));
  const domains::ViewAugment augment(
      domains::AugmentOptions().size(16).crop_scale_min(0.5).jitter_p(0).blur_p(0).mean({0.5}).std(
          {0.25}));
  const auto colours = torch::rand({8, 3, 1, 1});
  const auto images =
      (colours.repeat({4, 1, 16, 16}) + torch::rand({32, 3, 16, 16}) * 0.2).clamp(0, 1);
  Run run;
  for (int64_t step = 0; step < steps; ++step) {
    auto out = method.step(augment(images, 7, step, 2, 2));
    optimizer.zero_grad();
    out.loss.backward();
    optimizer.step();
    method.after_optimizer_step(step + 1, steps);
    if (step < 10) run.first_loss += out.loss.item<double>() / 10;
    if (step >= steps - 10) {
      run.last_loss += out.loss.item<double>() / 10;
      run.last_std += out.logs.at("embedding_std").item<double>() / 10;
    }
  }
  return run;
}

TEST(Siamese, ShortRunsLowerTheLossWithoutCollapse) {
  // Collapse would put embedding_std near 0; spread 8-d outputs give up to 1/sqrt(8) = 0.35.
  torch::manual_seed(5);
  MocoImpl moco_v2(
      tiny_resnet(), tiny_resnet(),
      MocoOptions().version(2).projection_dim(8).projection_hidden_dim(32).queue_size(64));
  const auto v2 = short_run(moco_v2, 60, 1e-3);
  EXPECT_LT(v2.last_loss, v2.first_loss);
  EXPECT_GT(v2.last_std, 0.05);
  MocoImpl moco_v3(
      tiny_resnet(), tiny_resnet(),
      MocoOptions().version(3).projection_dim(8).projection_hidden_dim(32).predictor_hidden_dim(
          32));
  const auto v3 = short_run(moco_v3, 60, 1e-3);
  EXPECT_LT(v3.last_loss, v3.first_loss);
  EXPECT_GT(v3.last_std, 0.05);
  ByolImpl byol(tiny_resnet(), tiny_resnet(),
                ByolOptions().projection_dim(8).projection_hidden_dim(32).predictor_hidden_dim(32));
  const auto b = short_run(byol, 60, 1e-3);
  EXPECT_LT(b.last_loss, b.first_loss);
  EXPECT_GT(b.last_std, 0.05);
  SimSiamImpl simsiam(
      tiny_resnet(),
      SimSiamOptions().projection_dim(8).projection_hidden_dim(32).predictor_hidden_dim(4));
  const auto s = short_run(simsiam, 60, 1e-3);
  EXPECT_LT(s.last_loss, s.first_loss);
  EXPECT_GT(s.last_std, 0.05);
  BarlowTwinsImpl barlow(tiny_resnet(),
                         BarlowTwinsOptions().projection_dim(16).projection_hidden_dim(32));
  const auto bt = short_run(barlow, 60, 1e-3);
  EXPECT_LT(bt.last_loss, bt.first_loss);
  EXPECT_GT(bt.last_std, 0.05);
  VicRegImpl vicreg(tiny_resnet(), VicRegOptions().projection_dim(16).projection_hidden_dim(32));
  const auto vr = short_run(vicreg, 60, 1e-3);
  EXPECT_LT(vr.last_loss, vr.first_loss);
  EXPECT_GT(vr.last_std, 0.05);
}

}  // namespace
}  // namespace pretext::methods
