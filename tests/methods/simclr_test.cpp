#include <gtest/gtest.h>
#include <torch/optim/adam.h>
#include <torch/types.h>

#include "base/errors.h"
#include "methods/registry.h"
#include "methods/resnet.h"
#include "methods/simclr.h"

namespace pretext::methods {
namespace {

std::shared_ptr<BackboneImpl> tiny_backbone() {
  return std::make_shared<ResNetImpl>(
      ResNetOptions(18).in_channels(2).width_multiplier(0.125).small_stem(true));
}

TEST(SimClr, StepGivesAScalarLossWithGradientsEverywhere) {
  torch::manual_seed(0);
  SimClrImpl simclr(tiny_backbone(), SimClrOptions().projection_dim(16));
  const auto out = simclr.step({torch::rand({6, 2, 12, 12}), torch::rand({6, 2, 12, 12})});
  ASSERT_EQ(out.loss.dim(), 0);
  EXPECT_TRUE(std::isfinite(out.loss.item<double>()));
  out.loss.backward();
  for (const auto& p : simclr.named_parameters())
    EXPECT_TRUE(p.value().grad().defined()) << p.key();
  EXPECT_TRUE(simclr.named_parameters().contains("backbone.conv1.weight"));
  EXPECT_EQ(simclr.encoder()->feature_dim(), 64);
}

TEST(SimClr, LearnsToMatchTwoNoisyViews) {
  // Views of 32 fixed images with independent noise: the loss must fall well below its start.
  torch::manual_seed(1);
  SimClrImpl simclr(tiny_backbone(), SimClrOptions().projection_dim(16).temperature(0.2));
  torch::optim::Adam optimizer(simclr.parameters(), torch::optim::AdamOptions(3e-3));
  const auto images = torch::rand({32, 2, 8, 8});
  double first = 0, last = 0;
  for (int step = 0; step < 80; ++step) {
    auto out = simclr.step(
        {images + 0.25 * torch::randn_like(images), images + 0.25 * torch::randn_like(images)});
    optimizer.zero_grad();
    out.loss.backward();
    optimizer.step();
    if (step < 5) first += out.loss.item<double>() / 5;
    if (step >= 75) last += out.loss.item<double>() / 5;
  }
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
}

TEST(Registry, UnknownNamesListTheKnownOnes) {
  try {
    method_spec("simclrr");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(
        e.what(),
        "unknown method 'simclrr' (known: simclr, mae, dino, moco, byol, simsiam, "
        "barlow_twins, vicreg, autoencoder, rotation, jigsaw, simmim, ibot, vqvae, beit, satmae)");
  }
  EXPECT_THROW(backbone_spec("resnet101"), ConfigError);
  const auto spec = backbone_spec("resnet34");
  EXPECT_EQ(spec->build(5)->feature_dim(), 512);
}

}  // namespace
}  // namespace pretext::methods
