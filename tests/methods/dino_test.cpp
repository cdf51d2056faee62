#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>
#include <torch/nn/functional.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "methods/dino.h"
#include "methods/momentum.h"
#include "methods/vit.h"
#include "tests/methods/colour_images.h"

namespace pretext::methods {
namespace {

std::shared_ptr<BackboneImpl> tiny_vit() {
  return std::make_shared<ViTImpl>(
      ViTOptions().image_size(16).patch_size(4).in_channels(3).dim(16).depth(1).heads(2));
}

TEST(Dino, LossIsTheCrossEntropyOverEveryOtherView) {
  torch::manual_seed(0);
  const int64_t batch = 3, k = 5, views = 4, globals = 2;
  const auto student = torch::randn({views * batch, k});
  const auto teacher = torch::randn({globals * batch, k});
  const auto center = torch::randn({1, k}) * 0.1;
  const double ts = 0.1, tt = 0.04;
  double expected = 0;
  int pairs = 0;
  for (int64_t t = 0; t < globals; ++t)
    for (int64_t v = 0; v < views; ++v) {
      if (v == t) continue;
      double pair = 0;
      for (int64_t b = 0; b < batch; ++b) {
        const auto q = torch::softmax((teacher[t * batch + b] - center[0]) / tt, 0);
        const auto logp = torch::log_softmax(student[v * batch + b] / ts, 0);
        pair += -(q * logp).sum().item<double>();
      }
      expected += pair / batch;
      ++pairs;
    }
  expected /= pairs;
  EXPECT_NEAR(
      dino_loss(student, centred_targets(teacher, center, tt), ts, views, globals).item<double>(),
      expected, 1e-4);
}

TEST(DinoV2, SinkhornKnoppTargetsAreTheReferencesByHand) {
  // The reference's loop on Q = exp(t / temp)^T [K, B], in plain doubles.
  torch::manual_seed(4);
  const int64_t rows = 5, k = 3;
  const double temp = 0.5;
  const auto teacher = torch::randn({rows, k});
  std::vector<std::vector<double>> q(k, std::vector<double>(rows));
  double total = 0;
  for (int64_t p = 0; p < k; ++p)
    for (int64_t b = 0; b < rows; ++b)
      total += q[p][b] = std::exp(teacher[b][p].item<double>() / temp);
  for (auto& row : q)
    for (auto& v : row) v /= total;
  for (int iteration = 0; iteration < 3; ++iteration) {
    for (auto& row : q) {
      const double sum = std::accumulate(row.begin(), row.end(), 0.0);
      for (auto& v : row) v /= sum * k;
    }
    for (int64_t b = 0; b < rows; ++b) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) sum += q[p][b];
      for (int64_t p = 0; p < k; ++p) q[p][b] /= sum * rows;
    }
  }
  const auto targets = sinkhorn_knopp_targets(teacher, temp, 3, nullptr);
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t p = 0; p < k; ++p)
      EXPECT_NEAR(targets[b][p].item<double>(), q[p][b] * rows, 1e-6) << b << " " << p;
  // Sharp outputs do not overflow: the maximum is taken out before exp.
  EXPECT_TRUE(
      torch::isfinite(sinkhorn_knopp_targets(teacher * 1000, 0.04, 3, nullptr)).all().item<bool>());
}

TEST(DinoV2, KoLeoIsMinusTheMeanLogDistanceToTheNearestNeighbourByHand) {
  torch::manual_seed(5);
  const auto features = torch::randn({6, 3}, torch::requires_grad());
  const auto x = torch::nn::functional::normalize(
      features.detach(), torch::nn::functional::NormalizeFuncOptions().dim(1));
  double expected = 0;
  for (int64_t i = 0; i < 6; ++i) {
    double best = -2;
    int64_t nearest = -1;
    for (int64_t j = 0; j < 6; ++j)
      if (j != i && x[i].dot(x[j]).item<double>() > best) {
        best = x[i].dot(x[j]).item<double>();
        nearest = j;
      }
    double squared = 0;
    for (int64_t d = 0; d < 3; ++d)
      squared += std::pow(x[i][d].item<double>() - x[nearest][d].item<double>() + 1e-8, 2);
    expected -= std::log(std::sqrt(squared) + 1e-8) / 6;
  }
  const auto loss = koleo_loss(features);
  EXPECT_NEAR(loss.item<double>(), expected, 1e-5);
  loss.backward();  // it pushes neighbours apart: a gradient reaches the features
  EXPECT_GT(features.grad().abs().sum().item<double>(), 0);
}

TEST(DinoV2, SinkhornKnoppLeavesTheCentreAndKoLeoJoinsTheLoss) {
  torch::manual_seed(6);
  const auto options = DinoOptions().out_dim(32).hidden_dim(16).bottleneck_dim(8).local_crops(0);
  DinoImpl plain(tiny_vit(), tiny_vit(), options);
  torch::manual_seed(6);
  DinoImpl v2(tiny_vit(), tiny_vit(),
              DinoOptions(options).centering("sinkhorn_knopp").koleo_weight(0.1));
  const std::vector<torch::Tensor> views = {torch::rand({4, 3, 16, 16}),
                                            torch::rand({4, 3, 16, 16})};
  const auto a = plain.step(views);
  const auto b = v2.step(views);
  EXPECT_GT(plain.center().abs().sum().item<double>(), 0.0);
  EXPECT_EQ(v2.center().abs().sum().item<double>(), 0.0);
  ASSERT_TRUE(b.logs.count("koleo"));
  EXPECT_FALSE(a.logs.count("koleo"));
  // Same weights, same views: the losses differ by the targets and 0.1 x KoLeo.
  const auto student =
      torch::cat({v2.student()->forward(views[0]), v2.student()->forward(views[1])});
  const double koleo = koleo_loss(student.slice(0, 0, 4)).item<double>() +
                       koleo_loss(student.slice(0, 4, 8)).item<double>();
  EXPECT_NEAR(b.logs.at("koleo").item<double>(), koleo, 1e-5);
  EXPECT_TRUE(std::isfinite(b.loss.item<double>()));
}

TEST(Dino, TemperatureWarmupAndMomentumSchedule) {
  const auto options =
      DinoOptions().warmup_teacher_temp(0.04).teacher_temp(0.07).warmup_teacher_steps(10);
  EXPECT_DOUBLE_EQ(teacher_temperature(options, 0), 0.04);
  EXPECT_NEAR(teacher_temperature(options, 5), 0.055, 1e-12);
  EXPECT_DOUBLE_EQ(teacher_temperature(options, 10), 0.07);
  EXPECT_DOUBLE_EQ(teacher_temperature(options, 1000), 0.07);
  EXPECT_NEAR(cosine_momentum(0.996, 0, 100), 0.996, 1e-12);
  EXPECT_NEAR(cosine_momentum(0.996, 50, 100), 0.998, 1e-12);
  EXPECT_NEAR(cosine_momentum(0.996, 100, 100), 1.0, 1e-12);
}

TEST(Dino, TeacherStartsAsTheStudentThenFollowsItsMovingAverage) {
  torch::manual_seed(1);
  DinoImpl dino(tiny_vit(), tiny_vit(),
                DinoOptions().out_dim(32).hidden_dim(16).bottleneck_dim(8).local_crops(0));
  auto student = dino.student()->named_parameters();
  auto teacher = dino.encoder()->named_parameters();
  for (const auto& item : student)
    EXPECT_TRUE(torch::equal(item.value(), teacher[item.key()])) << item.key();
  for (const auto& item : teacher) EXPECT_FALSE(item.value().requires_grad());
  // Move the student; one EMA step at m = 0.996 (step 0 of 100).
  const auto before = teacher["patch_embed.proj.weight"].clone();
  {
    torch::NoGradGuard no_grad;
    student["patch_embed.proj.weight"].add_(1.0);
  }
  dino.after_optimizer_step(0, 100);
  EXPECT_TRUE(torch::allclose(teacher["patch_embed.proj.weight"],
                              before * 0.996 + student["patch_embed.proj.weight"] * 0.004, 1e-6,
                              1e-6));
}

TEST(Dino, HeadBatchNormTakesOutWhatEveryImageShares) {
  // With use_bn the head (in training) ignores a direction all of a batch's features share, the
  // common component of untrained convolutional features; without it that component dominates.
  torch::manual_seed(4);
  const auto options = DinoOptions().out_dim(32).hidden_dim(16).bottleneck_dim(8);
  DinoHead plain(12, options), normalised(12, DinoOptions(options).use_bn(true));
  EXPECT_TRUE(normalised->named_parameters().contains("mlp.1.weight"));  // BatchNorm1d(16)
  EXPECT_TRUE(normalised->named_buffers().contains("mlp.1.running_mean"));
  EXPECT_FALSE(plain->named_buffers().contains("mlp.1.running_mean"));
  const auto features = torch::randn({6, 12});
  const auto shared = torch::randn({1, 12}) * 5;
  EXPECT_TRUE(torch::allclose(normalised->forward(features + shared), normalised->forward(features),
                              1e-4, 1e-4));
  EXPECT_FALSE(
      torch::allclose(plain->forward(features + shared), plain->forward(features), 1e-2, 1e-2));
}

TEST(Dino, CentreIsARunningMeanOfTeacherOutputs) {
  torch::manual_seed(2);
  DinoImpl dino(
      tiny_vit(), tiny_vit(),
      DinoOptions().out_dim(32).hidden_dim(16).bottleneck_dim(8).local_crops(2).center_momentum(
          0.9));
  const auto globals = torch::rand({4, 3, 16, 16});
  const std::vector<torch::Tensor> views = {globals.slice(0, 0, 2), globals.slice(0, 2, 4),
                                            torch::rand({2, 3, 8, 8}), torch::rand({2, 3, 8, 8})};
  const auto out = dino.step(views);
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
  EXPECT_GT(out.logs.at("teacher_entropy").item<double>(), 0.0);
  // The teacher head's output on the globals, recomputed, gives the centre after one update.
  torch::NoGradGuard no_grad;
  auto head = dino.named_children()["teacher_head"];
  const auto features = dino.encoder()->forward(torch::cat({views[0], views[1]}));
  const auto logits = std::dynamic_pointer_cast<DinoHeadImpl>(head)->forward(features);
  EXPECT_TRUE(torch::allclose(dino.center(), logits.mean(0, true) * 0.1, 1e-5, 1e-6));
}

TEST(Dino, AShortRunLowersTheLossWithoutCollapse) {
  // 32 images of 8 colours; with the reference's stabilisers (last layer frozen at first, learning
  // rate warm-up) the teacher should come to give each colour its own prototype: sharp outputs
  // per image, several prototypes over the batch.
  torch::manual_seed(3);
  const int64_t out_dim = 64, steps = 100, warmup = 30;
  DinoImpl dino(tiny_vit(), tiny_vit(),
                DinoOptions()
                    .out_dim(out_dim)
                    .hidden_dim(32)
                    .bottleneck_dim(16)
                    .local_crops(2)
                    .momentum_teacher(0.99)
                    .freeze_last_layer_steps(warmup));
  torch::optim::AdamW optimizer(dino.parameters(),
                                torch::optim::AdamWOptions(1e-3).weight_decay(0.04));
  const auto augment = testing::multi_crop_augment();
  const auto images = testing::colour_images();
  std::vector<double> loss, entropy, mean_entropy, spread;
  for (int64_t step = 0; step < steps; ++step) {
    for (auto& group : optimizer.param_groups())
      group.options().set_lr(1e-3 * std::min(1.0, (step + 1.0) / warmup));
    auto out = dino.step(augment(images, 7, step, dino.view_count(), dino.global_view_count()));
    optimizer.zero_grad();
    out.loss.backward();
    optimizer.step();
    dino.after_optimizer_step(step + 1, steps);
    loss.push_back(out.loss.item<double>());
    entropy.push_back(out.logs.at("teacher_entropy").item<double>());
    mean_entropy.push_back(out.logs.at("teacher_mean_entropy").item<double>());
    spread.push_back(out.logs.at("teacher_embedding_std").item<double>());
  }
  const auto average = [](const std::vector<double>& v, size_t from, size_t to) {
    return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
  };
  EXPECT_LT(average(loss, 90, 100), average(loss, 0, 10));
  // Not collapsed to uniform (per-image entropy near log 64 = 4.16) ...
  EXPECT_LT(average(entropy, 90, 100), 0.5 * std::log(static_cast<double>(out_dim)));
  // ... nor to one prototype for every image (batch-mean entropy near 0; 8 colours give log 8).
  EXPECT_GT(average(mean_entropy, 90, 100), 1.0);
  EXPECT_GT(average(spread, 90, 100), 1e-3);
}

}  // namespace
}  // namespace pretext::methods
