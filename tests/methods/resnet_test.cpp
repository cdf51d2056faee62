#include <gtest/gtest.h>
#include <torch/types.h>

#include <torch/nn/modules/batchnorm.h>

#include "methods/batch_norm.h"
#include "methods/resnet.h"

namespace pretext::methods {
namespace {

int64_t parameter_count(torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

TEST(ResNet, ParameterCountsMatchTorchvisionWithoutTheClassifier) {
  // torchvision: resnet18 11,689,512 and resnet50 25,557,032 parameters, of which the fc layer
  // holds 513,000 and 2,049,000.
  ResNet r18(ResNetOptions(18));
  EXPECT_EQ(parameter_count(*r18), 11689512 - 513000);
  ResNet r50(ResNetOptions(50));
  EXPECT_EQ(parameter_count(*r50), 25557032 - 2049000);
  EXPECT_EQ(r18->feature_dim(), 512);
  EXPECT_EQ(r50->feature_dim(), 2048);
}

TEST(ResNet, ParameterNamesFollowTorchvision) {
  ResNet net(ResNetOptions(18));
  const auto params = net->named_parameters();
  const auto buffers = net->named_buffers();
  for (const char* name :
       {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.bias", "layer4.1.bn2.bias"})
    EXPECT_TRUE(params.contains(name)) << name;
  EXPECT_TRUE(buffers.contains("bn1.running_mean"));
  EXPECT_TRUE(buffers.contains("layer3.1.bn1.num_batches_tracked"));
  EXPECT_FALSE(params.contains("layer1.0.downsample.0.weight"));
}

TEST(BatchNorm, OnOneProcessIsTorchsBatchNorm) {
  // Training steps then evaluation, [B, C] and [B, C, H, W], affine or not: the same outputs,
  // running statistics and state dict names as torch::nn::BatchNorm1d / 2d.
  torch::manual_seed(2);
  for (const bool affine : {true, false}) {
    BatchNorm ours(BatchNormOptions(3).affine(affine));
    torch::nn::BatchNorm2d theirs(torch::nn::BatchNorm2dOptions(3).affine(affine));
    for (int step = 0; step < 3; ++step) {
      const auto x = torch::randn({4, 3, 5, 5}) * 2 + step;
      EXPECT_TRUE(torch::allclose(ours(x), theirs(x), 1e-5, 1e-6));
    }
    EXPECT_TRUE(torch::allclose(ours->running_mean, theirs->running_mean));
    EXPECT_TRUE(torch::allclose(ours->running_var, theirs->running_var));
    EXPECT_EQ(ours->num_batches_tracked.item<int64_t>(), 3);
    ours->eval();
    theirs->eval();
    const auto x = torch::randn({2, 3, 5, 5});
    EXPECT_TRUE(torch::allclose(ours(x), theirs(x), 1e-5, 1e-6));
    EXPECT_EQ(ours->named_parameters().keys(), theirs->named_parameters().keys());
    EXPECT_EQ(ours->named_buffers().keys(), theirs->named_buffers().keys());
  }
  BatchNorm ours(BatchNormOptions(4));
  torch::nn::BatchNorm1d theirs(4);
  const auto rows = torch::randn({6, 4});
  EXPECT_TRUE(torch::allclose(ours(rows), theirs(rows), 1e-5, 1e-6));
}

TEST(ResNet, AnyBandsWidthAndStem) {
  torch::manual_seed(0);
  ResNet small(ResNetOptions(18).in_channels(1).width_multiplier(0.25).small_stem(true));
  EXPECT_EQ(small->feature_dim(), 128);
  EXPECT_EQ(small->forward(torch::rand({2, 1, 28, 28})).sizes(), (std::vector<int64_t>{2, 128}));
  ResNet wide(ResNetOptions(34).in_channels(13).width_multiplier(0.125));
  EXPECT_EQ(wide->forward(torch::rand({2, 13, 64, 64})).sizes(), (std::vector<int64_t>{2, 64}));
  ResNet bottleneck(ResNetOptions(50).in_channels(4).width_multiplier(0.125).small_stem(true));
  EXPECT_EQ(bottleneck->forward(torch::rand({2, 4, 16, 16})).sizes(),
            (std::vector<int64_t>{2, 256}));
  EXPECT_THROW(ResNet(ResNetOptions(20)), std::invalid_argument);
}

}  // namespace
}  // namespace pretext::methods
