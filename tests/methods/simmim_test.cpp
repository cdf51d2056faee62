// SimMIM: the reference's block masks, mask tokens in the encoder's input, the masked L1 loss by
// hand, the fit of mask blocks to the ViT, and a short run that learns to fill in masked blocks.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "base/errors.h"
#include "methods/mae.h"
#include "methods/resnet.h"
#include "methods/simmim.h"
#include "methods/vit.h"

namespace pretext::methods {
namespace {

std::shared_ptr<ViTImpl> tiny_vit(int64_t bands = 1, std::vector<int64_t> groups = {}) {
  return std::make_shared<ViTImpl>(ViTOptions()
                                       .image_size(16)
                                       .patch_size(2)
                                       .in_channels(bands)
                                       .dim(32)
                                       .depth(2)
                                       .heads(4)
                                       .mlp_ratio(2)
                                       .band_groups(std::move(groups)));
}

TEST(SimMim, MasksHideWholeBlocksExactlyTheReferencesCount) {
  // An 8x8 patch grid in blocks of 2x2 patches: 16 blocks, ceil(16 x 0.6) = 10 hidden.
  const auto mask = block_masks(6, 8, 2, 0.6, step_generator(3, 1));
  ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{6, 64}));
  EXPECT_TRUE(torch::equal(mask.sum(1), torch::full({6}, 40.0f)));
  const auto blocks = mask.view({6, 4, 2, 4, 2}).mean({2, 4});
  EXPECT_TRUE(torch::logical_or(blocks.eq(0), blocks.eq(1)).all().item<bool>());
  EXPECT_FALSE(torch::equal(mask[0], mask[1]));
  // Rows 2-3 of the global batch of 6 are those rows of the whole batch's masks.
  const auto rows = block_masks(2, 8, 2, 0.6, step_generator(3, 1), BatchSlice{2, 6});
  EXPECT_TRUE(torch::equal(rows, mask.slice(0, 2, 4)));
}

TEST(SimMim, HiddenPatchesEnterTheEncoderAsTheMaskTokenAtTheirPosition) {
  torch::manual_seed(0);
  auto vit = tiny_vit();
  const auto images = torch::randn({2, 1, 16, 16});
  auto mask = torch::zeros({2, 64});
  mask[0][5] = 1;
  mask[1][63] = 1;
  const auto token = torch::randn({1, 1, 32});
  const auto masked = vit->patch_tokens(images, mask, token);
  const auto plain = vit->patch_tokens(images);
  const auto bias = vit->named_parameters()["patch_embed.proj.bias"];
  // A zero image embeds to the bias; what is left is the position embedding.
  const auto positions = vit->patch_tokens(torch::zeros_like(images)) - bias;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t n = 0; n < 64; ++n) {
      const auto expected =
          mask[b][n].item<float>() == 1 ? token[0][0] + positions[b][n] : plain[b][n];
      EXPECT_TRUE(torch::allclose(masked[b][n], expected, 1e-5, 1e-6)) << b << " " << n;
    }
}

TEST(SimMim, TheLossIsTheL1ErrorOfTheMaskedPixelsByHand) {
  torch::manual_seed(1);
  // 2 images, 3 patches of 2x2 pixels in 2 bands (8 values each).
  const auto prediction = torch::randn({2, 3, 8}), target = torch::randn({2, 3, 8});
  const auto mask = torch::tensor({{1.0f, 0.0f, 1.0f}, {0.0f, 0.0f, 1.0f}}).view({2, 3});
  double sum = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t n = 0; n < 3; ++n)
      if (mask[b][n].item<float>() == 1)
        for (int64_t j = 0; j < 8; ++j)
          sum += std::abs(prediction[b][n][j].item<double>() - target[b][n][j].item<double>());
  // 3 masked patches of 4 pixels, 2 bands.
  EXPECT_NEAR(SimMimImpl::masked_l1(prediction, target, mask, 2).item<double>(), sum / 12 / 2,
              1e-6);
}

TEST(SimMim, NeedsAViTWhoseSizesFitTheMaskBlocks) {
  EXPECT_EQ(SimMimOptions().mismatch("resnet18")->first, "name");
  EXPECT_FALSE(SimMimOptions().mismatch("vit").has_value());
  EXPECT_THROW(SimMimImpl(std::make_shared<ResNetImpl>(ResNetOptions(18)), SimMimOptions()),
               ConfigError);
  // 32-pixel blocks do not divide 16-pixel images; 3 is not a multiple of the patch.
  EXPECT_THROW(SimMimImpl(tiny_vit(), SimMimOptions()), ConfigError);
  EXPECT_THROW(SimMimImpl(tiny_vit(), SimMimOptions().mask_patch_size(3)), ConfigError);
  EXPECT_THROW(SimMimImpl(tiny_vit(2, {1, 1}), SimMimOptions().mask_patch_size(4)), ConfigError);
  EXPECT_NO_THROW(SimMimImpl(tiny_vit(), SimMimOptions().mask_patch_size(8)));
}

TEST(SimMim, AShortRunLearnsToFillInMaskedBlocks) {
  // Ramps in random directions: a masked block is predictable from the visible ones.
  torch::manual_seed(2);
  const auto grid = torch::arange(16, torch::kFloat32) / 15.0;
  const auto angle = torch::rand({16, 1, 1}) * 6.283;
  const auto images =
      (angle.cos() * grid.view({1, 1, 16}) + angle.sin() * grid.view({1, 16, 1})).unsqueeze(1);
  torch::manual_seed(3);
  SimMimImpl simmim(tiny_vit(), SimMimOptions().mask_patch_size(4));
  torch::manual_seed(3);
  SimMimImpl twin(tiny_vit(), SimMimOptions().mask_patch_size(4));
  EXPECT_EQ(simmim.step({images}).loss.item<float>(), twin.step({images}).loss.item<float>());
  torch::optim::AdamW adam(simmim.parameters(), torch::optim::AdamWOptions(1e-3));
  std::vector<double> losses;
  for (int64_t step = 1; step <= 80; ++step) {
    const auto loss = simmim.step({images}).loss;
    adam.zero_grad();
    loss.backward();
    adam.step();
    simmim.after_optimizer_step(step, 80);
    losses.push_back(loss.item<double>());
  }
  const auto mean = [&](size_t from) {
    double sum = 0;
    for (size_t i = from; i < from + 5; ++i) sum += losses[i];
    return sum / 5;
  };
  EXPECT_LT(mean(75), 0.5 * mean(0)) << mean(0) << " -> " << mean(75);
}

}  // namespace
}  // namespace pretext::methods
