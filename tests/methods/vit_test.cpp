#include <cmath>

#include <gtest/gtest.h>
#include <torch/nn/utils/convert_parameters.h>
#include <torch/types.h>

#include "base/errors.h"
#include "methods/vit.h"

namespace pretext::methods {
namespace {

ViTOptions tiny() {
  return ViTOptions()
      .image_size(16)
      .patch_size(4)
      .in_channels(2)
      .dim(32)
      .depth(2)
      .heads(4)
      .mlp_ratio(2);
}

TEST(ViT, ViTSmallMatchesTimmsParameterCountAndNames) {
  // timm's vit_small_patch16_224: 22,050,664 parameters, of which the 1000-class head holds
  // 385,000.
  ViT vit(ViTOptions{});
  EXPECT_EQ(torch::nn::utils::parameters_to_vector(vit->parameters()).numel(), 22050664 - 385000);
  EXPECT_EQ(vit->feature_dim(), 384);
  const auto params = vit->named_parameters();
  for (const char* name :
       {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
        "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias",
        "blocks.11.norm2.bias", "blocks.11.mlp.fc1.weight", "blocks.11.mlp.fc2.bias",
        "norm.weight"})
    EXPECT_TRUE(params.contains(name)) << name;
  EXPECT_EQ(params["pos_embed"].sizes(), (std::vector<int64_t>{1, 197, 384}));
  ViT mean(tiny().class_token(false).pool("mean"));
  EXPECT_TRUE(mean->named_parameters().contains("fc_norm.weight"));
  EXPECT_FALSE(mean->named_parameters().contains("norm.weight"));
  EXPECT_FALSE(mean->named_parameters().contains("cls_token"));
}

TEST(ViT, SinCosPositionsMatchHandComputedValues) {
  // dim 8: frequencies 1 and 1/100; token 3 of a 2x2 grid is row 1, column 1, token 1 is row 0,
  // column 1.
  const auto table = sincos_position_embedding(8, 2);
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{4, 8}));
  const std::vector<double> one = {std::sin(1.0), std::sin(0.01), std::cos(1.0), std::cos(0.01)};
  const std::vector<double> zero = {0, 0, 1, 1};
  for (int j = 0; j < 4; ++j) {
    EXPECT_NEAR(table[3][j].item<double>(), one[j], 1e-6);       // column 1
    EXPECT_NEAR(table[3][4 + j].item<double>(), one[j], 1e-6);   // row 1
    EXPECT_NEAR(table[1][j].item<double>(), one[j], 1e-6);       // column 1
    EXPECT_NEAR(table[1][4 + j].item<double>(), zero[j], 1e-6);  // row 0
  }
  ViT vit(tiny().position_embedding("sincos").class_token(true));
  const auto pos = vit->named_parameters()["pos_embed"];
  EXPECT_FALSE(pos.requires_grad());
  EXPECT_TRUE(torch::equal(pos[0][0], torch::zeros({32})));  // the class token's position
  EXPECT_TRUE(torch::allclose(pos[0].slice(0, 1), sincos_position_embedding(32, 4)));
}

TEST(ViT, FeaturesAttentionAndLayers) {
  torch::manual_seed(0);
  for (const bool class_token : {true, false}) {
    ViT vit(tiny().class_token(class_token).pool(class_token ? "cls" : "mean"));
    const auto images = torch::randn({3, 2, 16, 16});
    const auto features = vit->forward(images);
    EXPECT_EQ(features.sizes(), (std::vector<int64_t>{3, 32}));
    const auto tokens = vit->tokens(images);
    EXPECT_EQ(tokens.size(1), 16 + (class_token ? 1 : 0));
    const auto map = vit->attention_map(images);
    EXPECT_EQ(map.sizes(), (std::vector<int64_t>{3, 4, 4}));
    EXPECT_GE(map.min().item<float>(), 0.0f);
    // Without a class token each query's weights over the 16 patches sum to 1; with one, the
    // class token's weights on the patches leave out its weight on itself.
    const auto sums = map.sum({1, 2});
    if (class_token)
      EXPECT_TRUE((sums < 1.0).all().item<bool>());
    else
      EXPECT_TRUE(torch::allclose(sums, torch::ones({3})));
  }
  ViT vit(tiny());
  EXPECT_EQ(vit->layer_count(), 3);
  EXPECT_EQ(vit->layer_of("patch_embed.proj.weight"), 0);
  EXPECT_EQ(vit->layer_of("pos_embed"), 0);
  EXPECT_EQ(vit->layer_of("blocks.0.attn.qkv.weight"), 1);
  EXPECT_EQ(vit->layer_of("blocks.1.mlp.fc2.bias"), 2);
  EXPECT_EQ(vit->layer_of("norm.weight"), 3);
}

TEST(ViT, ShapesThatDoNotFitAreConfigErrors) {
  EXPECT_EQ(tiny().image_size(18).mismatch()->first, "image_size");
  EXPECT_EQ(tiny().heads(5).mismatch()->first, "dim");
  EXPECT_EQ(tiny().dim(36).heads(6).position_embedding("sincos").mismatch()->first, "dim");
  EXPECT_EQ(tiny().class_token(false).mismatch()->first, "pool");
  EXPECT_FALSE(tiny().mismatch().has_value());
  EXPECT_THROW(ViT(tiny().image_size(18)), ConfigError);
  ViT vit(tiny());
  EXPECT_THROW(vit->forward(torch::zeros({1, 2, 30, 30})), c10::Error);  // not whole patches
}

TEST(ViT, OtherSizesGetTheirPositionGridResampled) {
  ViT vit(tiny());
  torch::NoGradGuard no_grad;
  vit->eval();
  const int64_t size = tiny().image_size(), patch = tiny().patch_size();
  // At its own size the resampled grid is the grid itself; smaller crops still run.
  const auto image = torch::rand({2, tiny().in_channels(), size, size});
  auto conv =
      std::dynamic_pointer_cast<torch::nn::Conv2dImpl>(vit->named_modules()["patch_embed.proj"]);
  ASSERT_TRUE(conv);
  EXPECT_TRUE(torch::allclose(
      vit->patch_tokens(image),
      conv->forward(image).flatten(2).transpose(1, 2) +
          vit->named_parameters()["pos_embed"].slice(1, tiny().class_token() ? 1 : 0)));
  EXPECT_EQ(vit->forward(torch::rand({2, tiny().in_channels(), size / 2, size / 2})).sizes(),
            (std::vector<int64_t>{2, tiny().dim()}));
  EXPECT_EQ(vit->patch_tokens(torch::rand({1, tiny().in_channels(), 2 * patch, 2 * patch})).size(1),
            4);
}

}  // namespace
}  // namespace pretext::methods
