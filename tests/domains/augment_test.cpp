#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include "domains/augment.h"
#include "domains/stain.h"

namespace pretext::domains {
namespace {

at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

// Parameters that leave an image as it is: full crop, no flips, turns, jitter or blur.
AugmentParams identity(int64_t n) {
  const auto zeros = torch::zeros({n}, torch::kFloat64);
  const auto ones = torch::ones({n}, torch::kFloat64);
  return {zeros,
          zeros,
          ones,
          ones,
          zeros,
          zeros,
          zeros,
          ones,
          ones,
          ones,
          zeros,
          torch::zeros({n}, torch::kInt64),
          zeros,
          ones,
          torch::zeros({n, 5}, torch::kFloat64),
          zeros,
          0,
          torch::ones({n, 3}, torch::kFloat64),
          torch::zeros({n, 3}, torch::kFloat64),
          at::Tensor(),  // no band jitter or dropout
          at::Tensor(),
          at::Tensor()};
}

AugmentOptions plain(int64_t size) { return AugmentOptions().size(size).mean({0.0}).std({1.0}); }

TEST(Augment, ParametersArePerSampleAndReproducibleFromTheSeed) {
  const Augment augment(AugmentOptions().rotate90_p(0.5).vflip_p(0.5));
  auto g1 = seeded(11), g2 = seeded(11), g3 = seeded(12);
  const auto a = augment.sample(64, 32, 32, g1);
  const auto b = augment.sample(64, 32, 32, g2);
  const auto c = augment.sample(64, 32, 32, g3);
  for (const auto& [x, y, z] : {std::tuple{a.crop_x, b.crop_x, c.crop_x},
                                std::tuple{a.brightness, b.brightness, c.brightness},
                                std::tuple{a.quarter_turns, b.quarter_turns, c.quarter_turns},
                                std::tuple{a.blur_sigma, b.blur_sigma, c.blur_sigma}}) {
    EXPECT_TRUE(torch::equal(x, y));
    EXPECT_FALSE(torch::equal(x, z));
    EXPECT_GT(std::get<0>(torch::_unique(x)).size(0), 1);  // differs across the batch
  }
  // Crops stay inside the image.
  EXPECT_LE((a.crop_x.abs() + a.crop_width).max().item<double>(), 1.0 + 1e-9);
  EXPECT_LE((a.crop_y.abs() + a.crop_height).max().item<double>(), 1.0 + 1e-9);
  // Whole augmented batches too.
  const auto batch = torch::rand({8, 3, 40, 40});
  auto g4 = seeded(5), g5 = seeded(5);
  EXPECT_TRUE(torch::equal(augment(batch, g4), augment(batch, g5)));
}

TEST(Augment, ParametersTravelAsOnePackedCopyAndComeBackExact) {
  const Augment augment(AugmentOptions().bias_field_p(0.5).band_jitter_p(0.5).hed_p(0.5));
  auto g = seeded(4);
  const auto params = augment.sample(6, 20, 30, g, 3);
  const auto moved = params.to(torch::kCPU);  // the packing the GPU path uses
  const auto same = [](const torch::Tensor& a, const torch::Tensor& b) {
    return a.scalar_type() == b.scalar_type() && torch::equal(a, b);
  };
  EXPECT_TRUE(same(moved.crop_x, params.crop_x));
  EXPECT_TRUE(same(moved.window_preset, params.window_preset));  // int64 kept
  EXPECT_TRUE(same(moved.bias, params.bias));                    // [B, 5]
  EXPECT_TRUE(same(moved.hed_shift, params.hed_shift));
  EXPECT_TRUE(same(moved.band_keep, params.band_keep));  // the last one
  EXPECT_EQ(moved.noise_seed, params.noise_seed);
  AugmentParams partial = identity(6);  // undefined band tensors stay undefined
  EXPECT_FALSE(partial.to(torch::kCPU).band_scale.defined());
  EXPECT_TRUE(same(partial.to(torch::kCPU).gamma, partial.gamma));
}

TEST(Augment, SeededNormalIsAHashOfSeedAndPosition) {
  // Golden values from the same hash and Box-Muller in plain Python integers and floats.
  const auto values = seeded_normal({5}, 0x123456789abcdefULL, torch::kFloat64);
  const auto expected = torch::tensor({0.20280985804602134, 0.784139675748452, 1.1533167601932433,
                                       1.085954042792481, -0.5902908420404146},
                                      torch::kFloat64);
  EXPECT_TRUE(torch::allclose(values, expected, 0, 1e-12));
  const auto noise = seeded_normal({4, 50, 1000}, 7, torch::kFloat32);
  EXPECT_EQ(noise.sizes(), (std::vector<int64_t>{4, 50, 1000}));
  EXPECT_NEAR(noise.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(noise.std().item<double>(), 1.0, 0.01);
  EXPECT_NEAR((noise.abs() < 1).to(torch::kFloat64).mean().item<double>(), 0.6827, 0.005);
  const auto flat = noise.flatten();  // neighbours independent
  const auto next = (flat.slice(0, 1) * flat.slice(0, 0, -1)).mean().item<double>();
  EXPECT_NEAR(next, 0.0, 0.01);
  const auto other = seeded_normal({4, 50, 1000}, 8, torch::kFloat32);
  EXPECT_NEAR((noise * other).mean().item<double>(), 0.0, 0.01);
  EXPECT_TRUE(torch::equal(seeded_normal({4, 50, 1000}, 7, torch::kFloat32), noise));
}

TEST(Augment, RowQuantilesMatchTorchAndAcceptLargeRows) {
  const auto rows = torch::randn({3, 101});
  const std::vector<double> fractions = {0, 0.005, 0.37, 0.5, 0.995, 1};
  const auto ours = row_quantiles(rows, fractions);
  const auto theirs =
      torch::quantile(rows.to(torch::kFloat64), torch::tensor(fractions, torch::kFloat64), 1);
  EXPECT_TRUE(torch::allclose(ours, theirs, 0, 1e-12));
  // Ranks on a value give it, infinite ones included (torch.quantile's rule).
  const auto infinite = torch::tensor({-INFINITY, 0.f, 1.f, INFINITY}).view({1, 4});
  const auto ends = row_quantiles(infinite, {0, 0.5, 1});
  EXPECT_EQ(ends[0][0].item<double>(), -INFINITY);
  EXPECT_DOUBLE_EQ(ends[1][0].item<double>(), 0.5);
  EXPECT_EQ(ends[2][0].item<double>(), INFINITY);
  // torch.quantile refuses more than 2^24 values; a shuffled ramp's quantiles are its positions.
  const int64_t n = (int64_t{1} << 24) + 1;
  const auto ramp = torch::randperm(n, torch::kFloat32).view({1, n});
  const auto middle = row_quantiles(ramp, {0.25, 0.5});
  EXPECT_DOUBLE_EQ(middle[0][0].item<double>(), 0.25 * (n - 1));
  EXPECT_DOUBLE_EQ(middle[1][0].item<double>(), 0.5 * (n - 1));
}

TEST(Augment, IdentityParametersOnlyNormalise) {
  const auto batch = torch::rand({4, 3, 16, 16});
  const Augment augment(AugmentOptions().size(16).mean({0.5, 0.4, 0.3}).std({0.2, 0.25, 0.5}));
  const auto out = augment.apply(batch, identity(4));
  const auto mean = torch::tensor({0.5, 0.4, 0.3}).view({1, 3, 1, 1});
  const auto std = torch::tensor({0.2, 0.25, 0.5}).view({1, 3, 1, 1});
  EXPECT_TRUE(torch::allclose(out, (batch - mean) / std, 1e-4, 1e-5));
}

TEST(Augment, FlipsAndQuarterTurnsMatchTorch) {
  const auto batch = torch::rand({3, 2, 12, 12});
  const Augment augment(plain(12));
  auto p = identity(3);
  p.hflip = torch::tensor({1.0, 0.0, 0.0}, torch::kFloat64);
  p.vflip = torch::tensor({0.0, 1.0, 0.0}, torch::kFloat64);
  p.quarter_turns = torch::tensor({0.0, 0.0, 1.0}, torch::kFloat64);
  const auto out = augment.apply(batch, p);
  EXPECT_TRUE(torch::allclose(out[0], batch[0].flip({2}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out[1], batch[1].flip({1}), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out[2], torch::rot90(batch[2], 1, {1, 2}), 1e-5, 1e-5));
}

TEST(Augment, CropOfTheLeftHalfResizesIt) {
  // A horizontal ramp: cropping the left half and resizing back doubles the slope.
  const auto ramp = (torch::arange(16, torch::kFloat32) + 0.5).div(16).expand({1, 1, 16, 16});
  const Augment augment(plain(16));
  auto p = identity(1);
  p.crop_x = torch::tensor({-0.5}, torch::kFloat64);
  p.crop_width = torch::tensor({0.5}, torch::kFloat64);
  const auto out = augment.apply(ramp.contiguous(), p);
  const auto expected = (torch::arange(16, torch::kFloat32) + 0.5).div(32).expand({1, 1, 16, 16});
  // Border samples clamp at the ramp's first pixel centre.
  EXPECT_TRUE(torch::allclose(out.slice(3, 1), expected.slice(3, 1), 1e-4, 1e-5));
}

TEST(Augment, JitterAppliesBrightnessContrastGammaPerSample) {
  const auto batch = torch::rand({2, 1, 8, 8});
  const Augment augment(plain(8));
  auto p = identity(2);
  p.brightness = torch::tensor({0.5, 1.0}, torch::kFloat64);
  p.gamma = torch::tensor({1.0, 2.0}, torch::kFloat64);
  const auto out = augment.apply(batch, p);
  EXPECT_TRUE(torch::allclose(out[0], batch[0] * 0.5, 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(out[1], batch[1].pow(2), 1e-4, 1e-5));

  auto q = identity(1);
  q.contrast = torch::tensor({0.0}, torch::kFloat64);  // contrast 0: every pixel becomes the mean
  const auto flat = augment.apply(batch.slice(0, 0, 1), q);
  EXPECT_TRUE(torch::allclose(flat, torch::full_like(flat, batch[0].mean().item<float>()), 1e-4));
}

TEST(Augment, BlurSmoothsOnlyTheChosenSamples) {
  torch::manual_seed(3);
  const auto batch = torch::rand({2, 2, 16, 16});
  const Augment augment(plain(16).blur_sigma_max(2.0));
  auto p = identity(2);
  p.blur_sigma = torch::tensor({1.5, 0.0}, torch::kFloat64);
  const auto out = augment.apply(batch, p);
  EXPECT_TRUE(torch::allclose(out[1], batch[1], 1e-5, 1e-5));
  EXPECT_LT(out[0].var().item<float>(), 0.5f * batch[0].var().item<float>());
  // A normalised kernel keeps the mean (up to reflection at the borders).
  EXPECT_NEAR(out[0].mean().item<float>(), batch[0].mean().item<float>(), 0.02);
  const auto flat = torch::full({1, 1, 16, 16}, 0.7);
  auto one = identity(1);
  one.blur_sigma = torch::tensor({2.0}, torch::kFloat64);
  EXPECT_TRUE(torch::allclose(augment.apply(flat, one), flat, 1e-5, 1e-5));
}

TEST(ViewAugment, ViewsDependOnSeedAndStepOnly) {
  const ViewAugment augment(AugmentOptions().size(16));
  const auto batch = torch::rand({4, 3, 20, 20});
  const auto a = augment(batch, 1, 10);
  const auto b = augment(batch, 1, 10);
  const auto c = augment(batch, 1, 11);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].sizes(), (std::vector<int64_t>{4, 3, 16, 16}));
  EXPECT_TRUE(torch::equal(a[0], b[0]));
  EXPECT_TRUE(torch::equal(a[1], b[1]));
  EXPECT_FALSE(torch::equal(a[0], a[1]));
  EXPECT_FALSE(torch::equal(a[0], c[0]));
}

TEST(ViewAugment, ARankSliceGetsTheViewsOfItsRowsOfTheGlobalBatch) {
  // Every random stage on, noise too: the views of rows [3, 6) of a batch of 8, made from those
  // rows alone, are the whole batch's views of them.
  const ViewAugment augment(AugmentOptions()
                                .size(16)
                                .rotate90_p(0.5)
                                .vflip_p(0.5)
                                .blur_p(0.5)
                                .noise_p(0.5)
                                .noise_std(0.2)
                                .bias_field_p(0.5)
                                .band_jitter_p(0.5));
  const auto batch = torch::rand({8, 3, 20, 20});
  const auto whole = augment(batch, 7, 3, 2);
  const auto part = augment(batch.narrow(0, 3, 3), 7, 3, 2, -1, false, BatchSlice{3, 8});
  for (size_t v = 0; v < whole.size(); ++v)
    EXPECT_LT((part[v] - whole[v].narrow(0, 3, 3)).abs().max().item<double>(), 1e-6) << v;
  // Without the slice the same rows get other draws.
  const auto alone = augment(batch.narrow(0, 3, 3), 7, 3, 2);
  EXPECT_GT((alone[0] - whole[0].narrow(0, 3, 3)).abs().max().item<double>(), 1e-3);
}

TEST(Augment, WindowPresetsMapHounsfieldUnitsToTheUnitRange) {
  // Soft tissue 40/400: -160 HU -> 0, 40 -> 0.5, 240 -> 1, beyond clipped; lung -600/1500.
  auto options =
      plain(4).window(WindowMode::kPresets).window_levels({40, -600}).window_widths({400, 1500});
  const auto hu = torch::tensor({-1000.f, -160.f, 40.f, 240.f, 1000.f}).view({1, 1, 1, 5});
  const auto batch = torch::cat({hu, hu});
  const auto zeros = torch::zeros({2}, torch::kFloat64), ones = torch::ones({2}, torch::kFloat64);
  const auto mapped = apply_window(batch, options, torch::tensor({0, 1}), zeros, ones);
  EXPECT_TRUE(torch::allclose(mapped[0].flatten(), torch::tensor({0.f, 0.f, 0.5f, 1.f, 1.f})));
  const auto lung = (torch::tensor({-1000.f, -160.f, 40.f, 240.f, 1000.f}) + 1350) / 1500;
  EXPECT_TRUE(torch::allclose(mapped[1].flatten(), lung.clamp(0, 1)));
  // Shift moves the level by a fraction of the width; scale widens it.
  const auto moved = apply_window(batch, options, torch::tensor({0, 0}),
                                  torch::tensor({0.25, 0.0}, torch::kFloat64),
                                  torch::tensor({1.0, 2.0}, torch::kFloat64));
  EXPECT_NEAR(moved[0].flatten()[2].item<float>(), 0.25f, 1e-6);  // 40 HU, level 140
  EXPECT_NEAR(moved[1].flatten()[3].item<float>(), 0.75f, 1e-6);  // 240 HU, width 800
  // Evaluation takes the first preset unjittered, then normalises.
  EXPECT_TRUE(torch::allclose(evaluation_view(hu, options.mean({0.5}).std({0.5})).flatten(),
                              torch::tensor({-1.f, -1.f, 0.f, 1.f, 1.f})));
}

TEST(Augment, PercentileWindowFollowsEachSample) {
  const auto options = plain(4).window(WindowMode::kPercentile).window_percentiles({0, 100});
  auto batch =
      torch::stack({torch::linspace(0, 10, 16), torch::linspace(100, 400, 16)}).view({2, 1, 4, 4});
  const auto mapped = evaluation_view(batch, options);
  for (int64_t b = 0; b < 2; ++b) {
    EXPECT_NEAR(mapped[b].min().item<float>(), 0.f, 1e-6);
    EXPECT_NEAR(mapped[b].max().item<float>(), 1.f, 1e-6);
  }
}

TEST(Augment, RadiologyDrawsAreReproducibleAndOffByDefault) {
  const auto batch = torch::full({4, 1, 8, 8}, 50.f);
  const Augment off(
      plain(8).jitter_p(0).blur_p(0).hflip_p(0).crop_scale_min(1).crop_ratio_min(1).crop_ratio_max(
          1));
  auto g = seeded(3);
  EXPECT_TRUE(torch::allclose(off(batch, g), batch));  // no window, bias or noise by default
  const auto options =
      plain(8).window(WindowMode::kPresets).bias_field_p(1).noise_p(1).jitter_p(0).blur_p(0);
  const Augment on(options);
  auto g1 = seeded(7), g2 = seeded(7);
  const auto a = on(batch, g1), b = on(batch, g2);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_GE(a.min().item<float>(), -0.5f);  // windowed to about [0, 1] plus noise
  EXPECT_LE(a.max().item<float>(), 1.5f);
  // A bias field is smooth and multiplicative: a constant image picks up a varying field.
  auto g3 = seeded(9);
  const auto params = on.sample(4, 8, 8, g3);
  EXPECT_GT(params.bias.abs().max().item<double>(), 0.0);
  EXPECT_GT(params.noise_std.min().item<double>(), 0.0);
}

TEST(Augment, HedRoundTripIsTheIdentityAndMatchesScikitImage) {
  torch::manual_seed(4);
  const auto rgb = torch::rand({2, 3, 5, 7}) * 0.98 + 0.01;
  EXPECT_TRUE(torch::allclose(hed_to_rgb(rgb_to_hed(rgb)), rgb, 1e-5, 1e-5));
  // scikit-image's rgb2hed before its clip at 0: log(rgb) / log(1e-6) @ inv(rgb_from_hed), one
  // pixel at a time.
  const auto pixel = torch::tensor({0.8f, 0.4f, 0.6f}).view({1, 3, 1, 1});
  const auto od = pixel.log() / std::log(1e-6f);
  const auto m =
      torch::tensor({0.65f, 0.70f, 0.29f, 0.07f, 0.99f, 0.11f, 0.27f, 0.57f, 0.78f}).view({3, 3});
  const auto expected = torch::matmul(od.view({1, 3}), torch::inverse(m)).view({1, 3, 1, 1});
  EXPECT_TRUE(torch::allclose(rgb_to_hed(pixel), expected, 1e-5, 1e-6));
  // Stain jitter changes colour per sample and leaves white white.
  auto options = plain(8)
                     .hed_p(1)
                     .hed_scale(0.3)
                     .hed_shift(0.0)
                     .jitter_p(0)
                     .blur_p(0)
                     .hflip_p(0)
                     .crop_scale_min(1)
                     .crop_ratio_min(1)
                     .crop_ratio_max(1);
  const Augment augment(options);
  auto batch = torch::full({2, 3, 8, 8}, 0.5f);
  batch.slice(2, 0, 4) = 1.0f;
  auto g = seeded(2);
  const auto out = augment(batch, g);
  EXPECT_TRUE(torch::allclose(out.slice(2, 0, 4), torch::ones({2, 3, 4, 8}), 1e-5, 1e-5));
  EXPECT_FALSE(torch::allclose(out[0].slice(1, 4, 8), out[1].slice(1, 4, 8)));
}

// An H&E-like image rendered from known stains: a third of the pixels haematoxylin only, a third
// eosin only, a third both, and a white border.
torch::Tensor rendered(const torch::Tensor& stains, const torch::Tensor& concentrations) {
  const auto od = torch::matmul(stains.t(), concentrations.flatten(1));  // [3, N]
  return (256 * (-od).exp() - 1).view({3, 30, 30});
}

TEST(Macenko, FindsTheStainsAnImageWasMadeWithAndNormalisesToAReference) {
  torch::manual_seed(6);
  const auto normalised = [](torch::Tensor m) { return m / m.norm(2, 1, true); };
  const auto he =
      normalised(torch::tensor({0.65, 0.70, 0.29, 0.07, 0.99, 0.11}, torch::kFloat64).view({2, 3}));
  auto c = torch::rand({2, 30, 30}, torch::kFloat64) + 0.3;
  c[1].slice(0, 0, 10).zero_();   // haematoxylin only
  c[0].slice(0, 10, 20).zero_();  // eosin only
  c.slice(2, 0, 2).zero_();       // white
  const auto image = rendered(he, c);
  const auto found = macenko_stain_matrix(image);
  EXPECT_GT((found * he).sum(1).min().item<double>(), 0.995) << found;
  const auto recovered = stain_concentrations(image, found);
  EXPECT_LT((recovered - c).abs().max().item<double>(), 0.05);
  // The same tissue stained differently comes back to the reference's colours.
  const auto other =
      normalised(torch::tensor({0.55, 0.78, 0.30, 0.12, 0.95, 0.25}, torch::kFloat64).view({2, 3}));
  const auto reference_max =
      torch::stack({torch::quantile(c[0].flatten(), 0.99), torch::quantile(c[1].flatten(), 0.99)});
  const auto back = macenko_normalise(rendered(other, c * 1.3), he, reference_max);
  EXPECT_LT((back - image.to(torch::kFloat32)).abs().mean().item<float>(), 2.0f);
}

// Multispectral options with everything else off: no crop, flips, jitter, blur; z = x.
AugmentOptions spectral_only() {
  return AugmentOptions()
      .size(8)
      .crop_scale_min(1)
      .crop_ratio_min(1)
      .crop_ratio_max(1)
      .hflip_p(0)
      .jitter_p(0)
      .blur_p(0)
      .mean({0})
      .std({1});
}

TEST(Augment, BandJitterScalesAndShiftsEachBandOnItsOwn) {
  const Augment augment(spectral_only().band_jitter_p(1).band_scale(0.2).band_shift(0.05));
  auto generator = at::make_generator<at::CPUGeneratorImpl>(3);
  const auto out = augment(torch::ones({16, 6, 8, 8}), generator);
  const auto per_band = out.mean({2, 3});  // 1 * scale + shift per sample and band
  EXPECT_TRUE((per_band >= 0.8 - 0.05 - 1e-5).all().item<bool>());
  EXPECT_TRUE((per_band <= 1.2 + 0.05 + 1e-5).all().item<bool>());
  // Bands of one sample differ; flat bands stay flat.
  EXPECT_GT(per_band.std(1).min().item<double>(), 1e-3);
  EXPECT_LT(out.std({2, 3}).max().item<double>(), 1e-5);
}

TEST(Augment, BandDropoutZeroesBandsAfterNormalisationKeepingOne) {
  const Augment augment(spectral_only().mean({0.5}).std({0.25}).band_dropout_p(0.6));
  auto generator = at::make_generator<at::CPUGeneratorImpl>(4);
  const auto out = augment(torch::ones({256, 4, 8, 8}), generator);  // normalised: 2
  const auto kept = (out.mean({2, 3}) > 1.5).to(torch::kFloat64);
  const auto dropped = out.mean({2, 3}).abs() < 1e-6;
  EXPECT_TRUE((kept.to(torch::kBool) | dropped).all().item<bool>());
  EXPECT_GE(kept.sum(1).min().item<double>(), 1.0);
  // Under 0.6 of the bands dropped (one is always kept), well over half.
  const double fraction = 1 - kept.mean().item<double>();
  EXPECT_GT(fraction, 0.45);
  EXPECT_LT(fraction, 0.6);
  // Off by default: nothing dropped.
  const Augment plain(spectral_only());
  EXPECT_TRUE(torch::equal(plain(torch::ones({8, 4, 8, 8}), generator), torch::ones({8, 4, 8, 8})));
}

TEST(ViewAugment, TemporalFramesGiveOneViewPerDate) {
  // Frame 0 is all 0, frame 1 all 1: view 0 must come from frame 0, view 1 from frame 1.
  const ViewAugment views(spectral_only().frames(2));
  const auto batch = torch::cat({torch::zeros({4, 3, 8, 8}), torch::ones({4, 3, 8, 8})}, 1);
  const auto out = views(batch, 9, 0, 2);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].size(1), 3);
  EXPECT_TRUE(torch::allclose(out[0], torch::zeros_like(out[0])));
  EXPECT_TRUE(torch::allclose(out[1], torch::ones_like(out[1])));
  EXPECT_THROW(views(torch::zeros({4, 5, 8, 8}), 9, 0, 2), c10::Error);
}

TEST(ViewAugment, JointFramesAreCroppedAlikeAndNormalisedPerBand) {
  // Frame 1 is frame 0 plus 1 in every band: with one crop, flip and rotation for the stack, the
  // view's frames still differ by exactly 1 (then / std) at every pixel.
  const ViewAugment views(spectral_only()
                              .frames(2)
                              .crop_scale_min(0.3)
                              .crop_scale_max(0.6)
                              .hflip_p(0.5)
                              .rotate90_p(0.5)
                              .mean({0.0, 10.0})
                              .std({1.0, 2.0}));
  torch::manual_seed(4);
  const auto frame = torch::rand({6, 2, 16, 16});
  const auto batch = torch::cat({frame, frame + 1}, 1);
  const auto out = views(batch, 9, 0, 1, -1, /*joint_frames=*/true);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].sizes(), (std::vector<int64_t>{6, 4, 8, 8}));
  const auto difference = out[0].slice(1, 2) - out[0].slice(1, 0, 2);
  EXPECT_TRUE(torch::allclose(difference.select(1, 0), torch::ones({6, 8, 8}), 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(difference.select(1, 1), torch::full({6, 8, 8}, 0.5), 1e-4, 1e-4));
  // Band 1 of both frames normalised with mean 10, std 2.
  EXPECT_LT(out[0].select(1, 3).max().item<float>(), (2.0f - 10.0f) / 2.0f + 1e-4f);
}

}  // namespace
}  // namespace pretext::domains
