// iBOT: BEiT's block masks, the masked patch loss by hand, the fit to the ViT, the patch head
// and centre, and a short run that lowers both losses without collapse.
#include <cmath>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>
#include <torch/nn/functional.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "base/errors.h"
#include "methods/ibot.h"
#include "methods/resnet.h"
#include "methods/vit.h"
#include "tests/methods/colour_images.h"

namespace pretext::methods {
namespace {

std::shared_ptr<BackboneImpl> tiny_vit(bool class_token = true) {
  return std::make_shared<ViTImpl>(ViTOptions()
                                       .image_size(16)
                                       .patch_size(2)
                                       .in_channels(3)
                                       .dim(16)
                                       .depth(1)
                                       .heads(2)
                                       .class_token(class_token)
                                       .pool(class_token ? "cls" : "mean"));
}

IbotOptions small(int64_t local_crops = 2) {
  IbotOptions options;
  options.dino().out_dim(32).hidden_dim(16).bottleneck_dim(8).local_crops(local_crops);
  return options.patch_out_dim(32);
}

TEST(Ibot, BlockMasksHideAtLeastOneBlockAndNoMoreThanTheTarget) {
  auto generator = step_generator(1, 0);
  for (int trial = 0; trial < 20; ++trial) {
    const auto mask = block_mask(14, 58.8, 16, 0.3, generator);  // 30% of 196 patches
    const double hidden = mask.sum().item<double>();
    EXPECT_LE(hidden, 58.8);
    EXPECT_GE(hidden, 16);  // at least one block of the smallest area, (14 / 3)^2
    EXPECT_TRUE(torch::logical_or(mask.eq(0), mask.eq(1)).all().item<bool>());
  }
  // The same generator state gives the same mask.
  auto first = step_generator(2, 0), second = step_generator(2, 0);
  EXPECT_TRUE(
      torch::equal(block_mask(14, 40, 16, 0.3, first), block_mask(14, 40, 16, 0.3, second)));
}

TEST(Ibot, MasksCoverTheChosenShareOfImagesForTheGlobalBatch) {
  IbotImpl ibot(tiny_vit(), tiny_vit(), small());
  const auto masks = ibot.masks(200, 8, step_generator(3, 0));
  ASSERT_EQ(masks.sizes(), (std::vector<int64_t>{2, 200, 64}));
  const auto any = masks.sum(-1).gt(0).to(torch::kFloat32).mean().item<double>();
  EXPECT_NEAR(any, 0.5, 0.08);  // masked_images 0.5 of 400 crops
  // Rows 50-99 of a global batch of 200 are those rows of the whole batch's masks.
  ibot.set_batch_slice(BatchSlice{50, 200});
  EXPECT_TRUE(torch::equal(ibot.masks(50, 8, step_generator(3, 0)), masks.narrow(1, 50, 50)));
}

TEST(Ibot, PatchLossAveragesTheMaskedPatchesOfEachImageByHand) {
  torch::manual_seed(1);
  const int64_t images = 2, patches = 3, k = 4;
  const auto student = torch::randn({images, patches, k});
  const auto targets = torch::softmax(torch::randn({images, patches, k}), -1);
  const auto mask = torch::tensor({1.0f, 0.0f, 1.0f, 0.0f, 0.0f, 0.0f}).view({images, patches});
  const double temp = 0.1;
  // Image 0: patches 0 and 2; image 1: none (0).
  double image0 = 0;
  for (int64_t n : {0, 2}) {
    const auto log_p = torch::log_softmax(student[0][n] / temp, 0);
    image0 -= (targets[0][n] * log_p).sum().item<double>() / 2;
  }
  EXPECT_NEAR(IbotImpl::patch_loss(student, targets, mask, temp).item<double>(), image0 / 2, 1e-5);
}

TEST(Ibot, NeedsAViTThatPoolsItsClassToken) {
  EXPECT_EQ(small().mismatch("resnet18")->first, "name");
  EXPECT_EQ(small().patch_out_dim(64).mismatch("vit")->first, "patch_out_dim");
  EXPECT_FALSE(small().patch_out_dim(64).shared_head(false).mismatch("vit").has_value());
  EXPECT_EQ(small().mask_ratio(0.1).mismatch("vit")->first, "mask_ratio_var");
  EXPECT_THROW(IbotImpl(tiny_vit(false), tiny_vit(false), small()), ConfigError);
  const auto resnet = std::make_shared<ResNetImpl>(ResNetOptions(18));
  EXPECT_THROW(IbotImpl(resnet, resnet, small()), ConfigError);
}

TEST(Ibot, SeparatePatchHeadsHaveTheirOwnPrototypes) {
  torch::manual_seed(2);
  IbotImpl ibot(tiny_vit(), tiny_vit(), small().shared_head(false).patch_out_dim(48));
  const auto params = ibot.named_parameters();
  EXPECT_EQ(params["student_head.patch_last_weight_v"].size(0), 48);
  EXPECT_EQ(params["teacher_head.patch_last_weight_v"].size(0), 48);
  EXPECT_EQ(ibot.patch_center().size(2), 48);
  const std::vector<torch::Tensor> views = {torch::rand({4, 3, 16, 16}),
                                            torch::rand({4, 3, 16, 16}), torch::rand({4, 3, 8, 8}),
                                            torch::rand({4, 3, 8, 8})};
  const auto out = ibot.step(views);
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
  EXPECT_NEAR(out.loss.item<double>(),
              out.logs.at("cls_loss").item<double>() + out.logs.at("patch_loss").item<double>(),
              1e-5);
  EXPECT_GT(ibot.patch_center().abs().sum().item<double>(), 0);
}

TEST(Ibot, AShortRunLowersTheLossWithoutCollapse) {
  torch::manual_seed(3);
  const int64_t steps = 80, warmup = 20;
  auto options = small();
  options.dino().momentum_teacher(0.99).freeze_last_layer_steps(warmup);
  IbotImpl ibot(tiny_vit(), tiny_vit(), options);
  torch::optim::AdamW optimizer(ibot.parameters(),
                                torch::optim::AdamWOptions(1e-3).weight_decay(0.04));
  const auto augment = testing::multi_crop_augment();
  const auto images = testing::colour_images();
  std::vector<double> loss, mean_entropy;
  for (int64_t step = 0; step < steps; ++step) {
    for (auto& group : optimizer.param_groups())
      group.options().set_lr(1e-3 * std::min(1.0, (step + 1.0) / warmup));
    auto out = ibot.step(augment(images, 7, step, ibot.view_count(), ibot.global_view_count()));
    optimizer.zero_grad();
    out.loss.backward();
    optimizer.step();
    ibot.after_optimizer_step(step + 1, steps);
    loss.push_back(out.loss.item<double>());
    mean_entropy.push_back(out.logs.at("teacher_mean_entropy").item<double>());
  }
  const auto average = [](const std::vector<double>& v, size_t from, size_t to) {
    return std::accumulate(v.begin() + from, v.begin() + to, 0.0) / static_cast<double>(to - from);
  };
  EXPECT_LT(average(loss, 70, 80), average(loss, 0, 10));
  EXPECT_GT(average(mean_entropy, 70, 80), 1.0);  // not one prototype for every image
}

}  // namespace
}  // namespace pretext::methods
