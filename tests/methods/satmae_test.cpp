#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/optim/adam.h>
#include <torch/types.h>

#include "base/errors.h"
#include "methods/mae.h"
#include "methods/registry.h"

namespace pretext::methods {
namespace {

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

/// A 16x16 ViT over 3 bands in groups of 2 and 1: 16 positions, 2 tokens each.
ViTOptions grouped() {
  return ViTOptions()
      .image_size(16)
      .patch_size(4)
      .in_channels(3)
      .band_groups({2, 1})
      .dim(32)
      .depth(2)
      .heads(4)
      .mlp_ratio(2)
      .class_token(false)
      .pool("mean")
      .position_embedding("sincos");
}

MaeOptions small_decoder() {
  return MaeOptions().decoder_dim(32).decoder_depth(1).decoder_heads(4);
}

/// sin / cos of position x 1 / 10000^(i / (dim / 2)), written out.
double encoding(double position, int64_t dim, int64_t i) {
  const int64_t half = dim / 2;
  const double omega = 1.0 / std::pow(10000.0, static_cast<double>(i % half) / half);
  return i < half ? std::sin(position * omega) : std::cos(position * omega);
}

TEST(SatMaeViT, EachBandGroupHasItsOwnEmbeddingAndGroupEncoding) {
  ViT vit(grouped());
  const auto params = vit->named_parameters();
  EXPECT_EQ(params["patch_embed.0.proj.weight"].sizes(), (std::vector<int64_t>{32, 2, 4, 4}));
  EXPECT_EQ(params["patch_embed.1.proj.weight"].sizes(), (std::vector<int64_t>{32, 1, 4, 4}));
  EXPECT_FALSE(params.contains("patch_embed.proj.weight"));
  ASSERT_TRUE(params.contains("group_embed"));
  EXPECT_FALSE(params["group_embed"].requires_grad());
  {
    // With the embeddings zeroed, a token is its position plus its group's encoding.
    torch::NoGradGuard no_grad;
    for (const auto& p : vit->named_parameters())
      if (p.key().rfind("patch_embed", 0) == 0) p.value().zero_();
  }
  const auto tokens = vit->patch_tokens(torch::randn({2, 3, 16, 16}));
  ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{2, 32, 32}));  // group-major 2 x 16 tokens
  const auto positions = sincos_position_embedding(32, 4);
  for (int64_t g = 0; g < 2; ++g)
    for (int64_t i = 0; i < 32; ++i)
      EXPECT_NEAR((tokens[1][g * 16 + 5][i] - positions[5][i]).item<double>(),
                  encoding(static_cast<double>(g), 32, i), 1e-5)
          << "group " << g << " channel " << i;
  // Each group reads its own bands only.
  ViT fresh(grouped());
  auto images = torch::randn({1, 3, 16, 16});
  const auto before = fresh->patch_tokens(images);
  images[0][2].add_(1.0);  // the second group's band
  const auto after = fresh->patch_tokens(images);
  EXPECT_TRUE(torch::allclose(before.slice(1, 0, 16), after.slice(1, 0, 16)));
  EXPECT_FALSE(torch::allclose(before.slice(1, 16), after.slice(1, 16)));
  EXPECT_EQ(fresh->forward(images).sizes(), (std::vector<int64_t>{1, 32}));
  EXPECT_EQ(fresh->attention_map(images).sizes(), (std::vector<int64_t>{1, 4, 4}));
}

TEST(SatMaeViT, GroupsMustHoldTheDataBands) {
  EXPECT_THROW(ViT(grouped().band_groups({2, 2})), ConfigError);
  try {
    ViT vit(grouped().band_groups({1, 1}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.band_groups"), std::string::npos) << e.what();
  }
}

TEST(SatMaeEncoding, DatesGiveYearAndSeasonHalves) {
  // 2020-06-15 is day 18428 since 1970-01-01.
  const auto table = acquisition_encoding(torch::tensor({18428}, torch::kInt64), 16);
  ASSERT_EQ(table.sizes(), (std::vector<int64_t>{1, 16}));
  const double years = 18428.0 / 365.2425;
  const double day = 18428.0 - std::floor(years) * 365.2425;
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_NEAR(table[0][i].item<double>(), encoding(years, 8, i), 1e-5) << i;
    EXPECT_NEAR(table[0][8 + i].item<double>(), encoding(day, 8, i), 1e-5) << i;
  }
  // The same day of another year differs in the year half only (up to the leap-day drift).
  const auto later =
      acquisition_encoding(torch::tensor({18428 + 1461}, torch::kInt64), 16);  // 4 years on
  EXPECT_GT((later.slice(1, 0, 8) - table.slice(1, 0, 8)).abs().max().item<double>(), 0.1);
  EXPECT_LT((later.slice(1, 8) - table.slice(1, 8)).abs().max().item<double>(), 0.05);
}

TEST(SatMaeMasking, ConsistentHidesThePositionsInEverySequence) {
  // 3 sequences (e.g. frames x groups) of 8 positions; token s * 8 + n holds s * 100 + n.
  const auto tokens = (torch::arange(3).view({3, 1}) * 100 + torch::arange(8).view({1, 8}))
                          .to(torch::kFloat32)
                          .view({1, 24, 1})
                          .expand({4, 24, 2});
  const auto m = random_masking(tokens, 0.75, generator(3), 3, /*consistent=*/true);
  EXPECT_EQ(m.visible.size(1), 3 * 2);  // round(8 x 0.25) positions in each of 3 sequences
  const auto per_sequence = m.mask.view({4, 3, 8});
  for (int64_t s = 1; s < 3; ++s)
    EXPECT_TRUE(torch::equal(per_sequence.select(1, s), per_sequence.select(1, 0)));
  EXPECT_FALSE(torch::equal(per_sequence.select(1, 0)[0], per_sequence.select(1, 0)[1]));
  // The visible tokens are the kept ones, and ids_restore puts every token back.
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t i = 0; i < 6; ++i) {
      const int64_t id = m.ids_keep[b][i].item<int64_t>();
      EXPECT_EQ(m.visible[b][i][0].item<float>(), static_cast<float>((id / 8) * 100 + id % 8));
      EXPECT_EQ(m.mask[b][id].item<float>(), 0.0f);
    }
  const auto restored = torch::cat({m.visible, torch::full({4, 18, 2}, -1.0f)}, 1)
                            .gather(1, m.ids_restore.unsqueeze(-1).expand({-1, -1, 2}));
  EXPECT_TRUE(torch::equal(restored, torch::where(m.mask.unsqueeze(-1).expand({-1, -1, 2}) > 0,
                                                  torch::full({4, 24, 2}, -1.0f), tokens)));
  // Independent: round(24 x 0.25) tokens anywhere, the sequences' masks differ.
  const auto free = random_masking(tokens, 0.75, generator(3), 3, /*consistent=*/false);
  EXPECT_EQ(free.visible.size(1), 6);
  const auto free_per_sequence = free.mask.view({4, 3, 8});
  EXPECT_FALSE(torch::equal(free_per_sequence.select(1, 0), free_per_sequence.select(1, 1)) &&
               torch::equal(free_per_sequence.select(1, 1), free_per_sequence.select(1, 2)));
}

/// Two frames of 3 bands: smooth ramps that differ between frames.
torch::Tensor stacks(int64_t batch) {
  torch::manual_seed(0);
  const auto grid = torch::arange(16, torch::kFloat32) / 15.0;
  std::vector<torch::Tensor> bands;
  for (int64_t c = 0; c < 6; ++c) {
    const auto angle = torch::rand({batch, 1, 1}) * 6.283;
    bands.push_back(angle.cos() * grid.view({1, 1, 16}) + angle.sin() * grid.view({1, 16, 1}));
  }
  return torch::stack(bands, 1);
}

TEST(SatMae, PredictsEveryGroupOfEveryFrameWithTheReferenceLoss) {
  torch::manual_seed(1);
  MaeImpl mae(std::make_shared<ViTImpl>(grouped()), small_decoder());
  const auto stack = stacks(3);
  const auto days = torch::tensor({{18000, 18100}, {18200, 18300}, {18400, 18500}}, torch::kInt64);
  auto [predictions, masking] = mae.reconstruct(stack, days, generator(5));
  ASSERT_EQ(predictions.size(), 2u);
  EXPECT_EQ(predictions[0].sizes(), (std::vector<int64_t>{3, 32, 4 * 4 * 2}));  // 2 frames x 16
  EXPECT_EQ(predictions[1].sizes(), (std::vector<int64_t>{3, 32, 4 * 4 * 1}));
  EXPECT_EQ(masking.mask.sizes(), (std::vector<int64_t>{3, 64}));  // frames x groups x positions
  EXPECT_EQ(masking.visible.size(1), 16);                          // 64 x 0.25
  // Group 1 of frame 1 is band 5; its target patches are that band's pixels.
  const auto target = mae.group_patches(stack, 1);
  EXPECT_TRUE(torch::equal(target.slice(1, 16), patchify(stack.narrow(1, 5, 1), 4)));

  // The loss as SatMAE's forward_loss computes it: each patch of each frame normalised over all
  // 3 bands' pixels, squared error per band group, summed over the masked tokens of every group
  // and divided by their number.
  double total = 0, masked = 0;
  for (int64_t g = 0; g < 2; ++g) {
    const int64_t first = g == 0 ? 0 : 2, size = g == 0 ? 2 : 1;
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t t = 0; t < 2; ++t) {
        const auto whole = patchify(stack.narrow(1, t * 3, 3), 4)[b];  // [16, 48]
        const auto mean = whole.mean(-1, true);
        const auto std = (whole.var(-1, true, true) + 1e-6).sqrt();
        const auto expected =
            (patchify(stack.narrow(1, t * 3 + first, size), 4)[b] - mean) / std;  // [16, 16 size]
        const auto error =
            (predictions[g][b].slice(0, t * 16, t * 16 + 16) - expected).pow(2).mean(-1);  // [16]
        const auto token_mask = masking.mask[b].view({2, 2, 16})[t][g];
        total += (error * token_mask).sum().item<double>();
        masked += token_mask.sum().item<double>();
      }
  }
  const auto out = mae.loss(stack, predictions, masking);
  EXPECT_NEAR(out.loss.item<double>(), total / masked, 1e-5);
  ASSERT_EQ(out.logs.count("loss_group_0"), 1u);
  ASSERT_EQ(out.logs.count("loss_group_1"), 1u);
  // step_dated is reconstruct with the step's own masks, then this loss.
  EXPECT_TRUE(std::isfinite(mae.step_dated({stack}, days).loss.item<double>()));
}

TEST(SatMae, DatesChangeTheReconstructionOnlyWithTemporalEncoding) {
  const auto stack = stacks(2);
  const auto days = torch::tensor({{18000, 18100}, {18200, 18300}}, torch::kInt64);
  const auto shifted = days + 180;
  for (const bool temporal : {true, false}) {
    torch::manual_seed(1);
    MaeImpl mae(std::make_shared<ViTImpl>(grouped()), small_decoder().temporal_encoding(temporal));
    const auto a = mae.reconstruct(stack, days, generator(5)).first[0];
    const auto b = mae.reconstruct(stack, shifted, generator(5)).first[0];
    const auto none = mae.reconstruct(stack, {}, generator(5)).first[0];
    EXPECT_EQ(torch::allclose(a, b), !temporal) << "temporal " << temporal;
    EXPECT_EQ(torch::allclose(a, none), !temporal) << "temporal " << temporal;
  }
  auto spec = method_spec("satmae");
  auto satmae = spec->build([] { return std::make_shared<ViTImpl>(grouped()); }, {});
  EXPECT_TRUE(satmae->joint_frames());
  torch::manual_seed(1);
  const double with = satmae->step_dated({stack}, days).loss.item<double>();
  EXPECT_TRUE(std::isfinite(with));
}

TEST(SatMae, AShortRunLowersTheLossForBothMaskings) {
  const auto stack = stacks(16);
  const auto days = torch::tensor({18000, 18090}, torch::kInt64).expand({16, 2}).contiguous();
  for (const char* masking : {"independent", "consistent"}) {
    torch::manual_seed(2);
    MaeImpl mae(std::make_shared<ViTImpl>(grouped()),
                small_decoder().masking(masking).temporal_encoding(true));
    torch::optim::Adam adam(mae.parameters(), torch::optim::AdamOptions(1e-3));
    std::vector<double> losses;
    for (int64_t step = 1; step <= 60; ++step) {
      const auto loss = mae.step_dated({stack}, days).loss;
      adam.zero_grad();
      loss.backward();
      adam.step();
      mae.after_optimizer_step(step, 60);
      losses.push_back(loss.item<double>());
    }
    const auto mean = [&](size_t from) {
      double sum = 0;
      for (size_t i = from; i < from + 5; ++i) sum += losses[i];
      return sum / 5;
    };
    EXPECT_LT(mean(55), 0.7 * mean(0)) << masking << ": " << mean(0) << " -> " << mean(55);
  }
}

}  // namespace
}  // namespace pretext::methods
