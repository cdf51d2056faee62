#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/optim/adam.h>
#include <torch/types.h>

#include "base/errors.h"
#include "methods/mae.h"
#include "methods/resnet.h"

namespace pretext::methods {
namespace {

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

TEST(MaeMasking, KeepsTheRightCountAndRestoresTheOrder) {
  // Token n of every row holds the value n in all 3 channels.
  const auto tokens = torch::arange(16, torch::kFloat32).view({1, 16, 1}).expand({2, 16, 3});
  const auto m = random_masking(tokens, 0.75, generator(1));
  EXPECT_EQ(m.visible.sizes(), (std::vector<int64_t>{2, 4, 3}));
  EXPECT_TRUE(torch::equal(m.mask.sum(1), torch::full({2}, 12.0f)));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t id = m.ids_keep[b][i].item<int64_t>();
      EXPECT_EQ(m.visible[b][i][0].item<float>(), static_cast<float>(id));
      EXPECT_EQ(m.mask[b][id].item<float>(), 0.0f);
    }
  // Kept tokens followed by placeholders (-1), put back by ids_restore: every kept token lands
  // where it came from and the placeholders exactly where the mask is 1.
  const auto placeholders = torch::full({2, 12, 3}, -1.0f);
  const auto restored = torch::cat({m.visible, placeholders}, 1)
                            .gather(1, m.ids_restore.unsqueeze(-1).expand({-1, -1, 3}));
  const auto expected = torch::where(m.mask.unsqueeze(-1).expand({-1, -1, 3}) > 0,
                                     torch::full({2, 16, 3}, -1.0f), tokens);
  EXPECT_TRUE(torch::equal(restored, expected));
  // The rows differ, the same generator seed gives the same masks.
  EXPECT_FALSE(torch::equal(m.mask[0], m.mask[1]));
  EXPECT_TRUE(torch::equal(random_masking(tokens, 0.75, generator(1)).mask, m.mask));
  EXPECT_FALSE(torch::equal(random_masking(tokens, 0.75, generator(2)).mask, m.mask));
  EXPECT_EQ(random_masking(tokens, 0.99, generator(1)).visible.size(1), 1);  // at least one
}

TEST(MaeMasking, ARankSliceGetsTheMasksOfItsRowsOfTheGlobalBatch) {
  const auto tokens = torch::rand({6, 12, 4});
  for (const bool consistent : {false, true}) {
    const auto whole = random_masking(tokens, 0.5, generator(4), 3, consistent);
    const auto part =
        random_masking(tokens.narrow(0, 2, 2), 0.5, generator(4), 3, consistent, BatchSlice{2, 6});
    EXPECT_TRUE(torch::equal(part.mask, whole.mask.narrow(0, 2, 2)));
    EXPECT_TRUE(torch::equal(part.ids_keep, whole.ids_keep.narrow(0, 2, 2)));
    EXPECT_TRUE(torch::equal(part.visible, whole.visible.narrow(0, 2, 2)));
  }
}

TEST(MaePatches, FollowTheReferenceLayoutAndRoundTrip) {
  // 4x4 image of values 0..15, 2x2 patches: patch 0 is the top-left 0, 1, 4, 5.
  const auto image = torch::arange(16, torch::kFloat32).view({1, 1, 4, 4});
  const auto patches = patchify(image, 2);
  EXPECT_EQ(patches.sizes(), (std::vector<int64_t>{1, 4, 4}));
  EXPECT_TRUE(torch::equal(patches[0][0], torch::tensor({0.0f, 1.0f, 4.0f, 5.0f})));
  EXPECT_TRUE(torch::equal(patches[0][1], torch::tensor({2.0f, 3.0f, 6.0f, 7.0f})));
  EXPECT_TRUE(torch::equal(patches[0][2], torch::tensor({8.0f, 9.0f, 12.0f, 13.0f})));
  // Two bands: bands interleave within a pixel, (row, column, band).
  const auto two = torch::stack({image[0][0], image[0][0] + 100}).unsqueeze(0);
  EXPECT_TRUE(torch::equal(patchify(two, 2)[0][0].slice(0, 0, 4),
                           torch::tensor({0.0f, 100.0f, 1.0f, 101.0f})));
  const auto x = torch::randn({3, 2, 8, 8});
  EXPECT_TRUE(torch::equal(unpatchify(patchify(x, 4), 4, 2), x));
}

TEST(MaeLoss, CountsMaskedPatchesOnly) {
  const auto target = torch::zeros({1, 3, 2});
  auto prediction = torch::tensor({{{1.0f, 1.0f}, {2.0f, 0.0f}, {5.0f, 5.0f}}}).requires_grad_();
  const auto mask = torch::tensor({{1.0f, 1.0f, 0.0f}});
  const auto loss = masked_patch_loss(prediction, target, mask);
  // Patch errors 1 and 2 (mean over values) on the two masked patches: (1 + 2) / 2.
  EXPECT_FLOAT_EQ(loss.item<float>(), 1.5f);
  loss.backward();
  EXPECT_TRUE(torch::equal(prediction.grad()[0][2], torch::zeros({2})));
  EXPECT_GT(prediction.grad()[0][0].abs().sum().item<float>(), 0.0f);
}

MaeOptions small_decoder() {
  return MaeOptions().decoder_dim(32).decoder_depth(1).decoder_heads(4);
}

std::shared_ptr<ViTImpl> tiny_vit() {
  return std::make_shared<ViTImpl>(ViTOptions()
                                       .image_size(16)
                                       .patch_size(4)
                                       .in_channels(1)
                                       .dim(32)
                                       .depth(2)
                                       .heads(4)
                                       .mlp_ratio(2)
                                       .class_token(false)
                                       .pool("mean"));
}

TEST(Mae, NeedsAViTAndFittingDecoderShapes) {
  EXPECT_EQ(MaeOptions().mismatch("resnet18")->first, "name");
  EXPECT_EQ(MaeOptions().decoder_dim(30).mismatch("vit")->first, "decoder_dim");
  EXPECT_FALSE(MaeOptions().mismatch("vit").has_value());
  EXPECT_THROW(MaeImpl(std::make_shared<ResNetImpl>(ResNetOptions(18)), MaeOptions()), ConfigError);
}

TEST(Mae, AShortRunLowersTheLossWithReproducibleMasks) {
  // Ramps in random directions: a masked patch is predictable from its visible neighbours.
  torch::manual_seed(0);
  const auto grid = torch::arange(16, torch::kFloat32) / 15.0;
  const auto angle = torch::rand({16, 1, 1}) * 6.283;
  const auto images =
      (angle.cos() * grid.view({1, 1, 16}) + angle.sin() * grid.view({1, 16, 1})).unsqueeze(1);
  torch::manual_seed(1);
  MaeImpl mae(tiny_vit(), small_decoder());
  torch::manual_seed(1);
  MaeImpl twin(tiny_vit(), small_decoder());
  EXPECT_EQ(mae.step({images}).loss.item<float>(), twin.step({images}).loss.item<float>());
  EXPECT_EQ(mae.view_count(), 1);

  torch::optim::Adam adam(mae.parameters(), torch::optim::AdamOptions(1e-3));
  std::vector<double> losses;
  for (int64_t step = 1; step <= 80; ++step) {
    const auto loss = mae.step({images}).loss;
    adam.zero_grad();
    loss.backward();
    adam.step();
    mae.after_optimizer_step(step, 80);
    losses.push_back(loss.item<double>());
  }
  const auto mean = [&](size_t from) {
    double sum = 0;
    for (size_t i = from; i < from + 5; ++i) sum += losses[i];
    return sum / 5;
  };
  EXPECT_LT(mean(75), 0.7 * mean(0)) << mean(0) << " -> " << mean(75);
}

}  // namespace
}  // namespace pretext::methods
