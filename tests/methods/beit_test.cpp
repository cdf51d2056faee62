// The VQ-VAE tokenizer (nearest entries, its loss by hand, a short run that reconstructs with
// many codes in use) and BEiT (masks for the global batch, the masked-token cross-entropy by
// hand, the fit of tokenizer and ViT, a short run that learns to predict tokens while the
// tokenizer stays frozen).
#include <cmath>
#include <map>
#include <vector>

#include <gtest/gtest.h>
#include <torch/nn/functional.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "base/errors.h"
#include "base/torch_compat.h"
#include "methods/beit.h"
#include "methods/mae.h"
#include "methods/masking.h"
#include "methods/resnet.h"
#include "methods/vit.h"
#include "methods/vqvae.h"

namespace pretext::methods {
namespace {

std::shared_ptr<ViTImpl> tiny_vit(int64_t image_size = 16, int64_t patch = 4, int64_t bands = 1,
                                  std::vector<int64_t> groups = {}) {
  return std::make_shared<ViTImpl>(ViTOptions()
                                       .image_size(image_size)
                                       .patch_size(patch)
                                       .in_channels(bands)
                                       .dim(32)
                                       .depth(2)
                                       .heads(4)
                                       .mlp_ratio(2)
                                       .pool("mean")
                                       .band_groups(std::move(groups)));
}

VqVaeOptions tiny_tokenizer() {
  return VqVaeOptions().codebook_size(32).code_dim(8).decoder_dim(32).decoder_depth(1);
}

// Ramps in random directions: every patch is predictable from the others.
torch::Tensor ramps(int64_t count, int64_t side, uint64_t seed) {
  torch::manual_seed(seed);
  const auto grid = torch::arange(side, torch::kFloat32) / static_cast<double>(side - 1);
  const auto angle = torch::rand({count, 1, 1}) * 6.283;
  return (angle.cos() * grid.view({1, 1, side}) + angle.sin() * grid.view({1, side, 1}))
      .unsqueeze(1);
}

double mean_of(const std::vector<double>& values, size_t from, size_t count) {
  double sum = 0;
  for (size_t i = from; i < from + count; ++i) sum += values[i];
  return sum / static_cast<double>(count);
}

TEST(VqVae, EachLatentTakesTheEntryOfLargestCosine) {
  torch::manual_seed(0);
  namespace F = torch::nn::functional;
  const auto latents = F::normalize(torch::randn({3, 4, 8}), F::NormalizeFuncOptions().dim(-1));
  const auto codebook = F::normalize(torch::randn({5, 8}), F::NormalizeFuncOptions().dim(-1));
  const auto nearest = VqVaeImpl::nearest(latents, codebook);
  ASSERT_EQ(nearest.sizes(), (std::vector<int64_t>{3, 4}));
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t n = 0; n < 4; ++n) {
      int64_t best = -1;
      double best_distance = 1e9;
      for (int64_t k = 0; k < 5; ++k) {
        const double distance = (latents[b][n] - codebook[k]).pow(2).sum().item<double>();
        if (distance < best_distance) best_distance = distance, best = k;
      }
      EXPECT_EQ(nearest[b][n].item<int64_t>(), best) << b << " " << n;
    }
}

TEST(VqVae, EntriesAreChosenInFloat32UnderAutocast) {
  torch::manual_seed(7);
  namespace F = torch::nn::functional;
  const auto latents = F::normalize(torch::randn({4000, 32}), F::NormalizeFuncOptions().dim(-1));
  const auto codebook = F::normalize(torch::randn({1024, 32}), F::NormalizeFuncOptions().dim(-1));
  const auto expected = VqVaeImpl::nearest(latents, codebook);
  torch::Tensor actual;
  {
    compat::Autocast bf16(c10::DeviceType::CPU, torch::kBFloat16);
    actual = VqVaeImpl::nearest(latents, codebook);
  }
  EXPECT_TRUE(torch::equal(actual, expected))
      << actual.ne(expected).sum().item<int64_t>() << " of 4000 differ";
}

TEST(VqVae, TheLossIsReconstructionCodebookAndCommitmentByHand) {
  torch::manual_seed(1);
  VqVaeImpl vqvae(tiny_vit(), tiny_tokenizer().commitment(0.25));
  const auto images = torch::randn({2, 1, 16, 16});
  const auto out = vqvae.step({images});
  const auto z = vqvae.latents(images).detach();
  const auto codebook = vqvae.codebook().detach();
  auto quantised = torch::zeros_like(z);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t n = 0; n < 16; ++n)
      quantised[b][n] = codebook[VqVaeImpl::nearest(z[b][n], codebook).item<int64_t>()];
  torch::NoGradGuard no_grad;
  const double reconstruction =
      (vqvae.decode(quantised) - patchify(images, 4)).pow(2).mean().item<double>();
  const double distance = (quantised - z).pow(2).mean().item<double>();
  // The codebook and commitment terms are the same distance, taken to different sides.
  EXPECT_NEAR(out.loss.item<double>(), reconstruction + 1.25 * distance, 1e-5);
  EXPECT_NEAR(out.logs.at("reconstruction").item<double>(), reconstruction, 1e-5);
}

TEST(VqVae, GradientsPassTheQuantiserAndMoveOnlyTheEntriesInUse) {
  torch::manual_seed(2);
  VqVaeImpl vqvae(tiny_vit(), tiny_tokenizer());
  const auto images = torch::randn({2, 1, 16, 16});
  vqvae.step({images}).loss.backward();
  const auto used = std::get<0>(at::_unique(vqvae.codes(images).flatten()));
  const auto parameters = vqvae.named_parameters();
  const auto codebook_grad = parameters["codebook"].grad().abs().sum(1);
  auto in_use = torch::zeros({32}, torch::kBool);
  in_use.index_fill_(0, used, true);
  EXPECT_TRUE(codebook_grad.index({in_use}).gt(0).all().item<bool>());
  EXPECT_TRUE(codebook_grad.index({in_use.logical_not()}).eq(0).all().item<bool>());
  // The encoder learns through the straight-through estimator and the commitment term.
  EXPECT_GT(parameters["backbone.patch_embed.proj.weight"].grad().abs().sum().item<double>(), 0);
}

TEST(VqVae, EntriesLeftUnusedAreRestartedAtLatentsOfTheBatch) {
  torch::manual_seed(3);
  // Decay 0: the average share is the last step's; an entry no patch chose is restarted.
  VqVaeImpl vqvae(tiny_vit(), tiny_tokenizer().usage_decay(0).restart_below(0.5));
  const auto images = torch::randn({2, 1, 16, 16});
  const auto before = vqvae.named_parameters()["codebook"].detach().clone();
  const auto codes = vqvae.codes(images).flatten();
  const auto latents = vqvae.latents(images).detach().flatten(0, 1);  // 32 patches
  vqvae.step({images});
  vqvae.after_optimizer_step(1, 1);
  const auto after = vqvae.named_parameters()["codebook"].detach();
  int64_t restarted = 0;
  for (int64_t k = 0; k < 32; ++k) {
    if (codes.eq(k).any().item<bool>()) {
      EXPECT_TRUE(torch::equal(after[k], before[k])) << k;
      EXPECT_GT(vqvae.usage()[k].item<double>(), 0.5 / 32) << k;
      continue;
    }
    ++restarted;
    EXPECT_LT((latents - after[k]).abs().amax(1).min().item<double>(), 1e-6) << k;
    EXPECT_NEAR(vqvae.usage()[k].item<double>(), 1.0 / 32, 1e-9) << k;
  }
  EXPECT_GT(restarted, 0);
}

TEST(VqVae, NeedsAViTWithOneTokenPerPatch) {
  EXPECT_EQ(VqVaeOptions().mismatch("resnet18")->first, "name");
  EXPECT_EQ(VqVaeOptions().decoder_dim(30).mismatch("vit")->first, "decoder_dim");
  EXPECT_THROW(VqVaeImpl(std::make_shared<ResNetImpl>(ResNetOptions(18)), tiny_tokenizer()),
               ConfigError);
  EXPECT_THROW(VqVaeImpl(tiny_vit(16, 4, 2, {1, 1}), tiny_tokenizer()), ConfigError);
}

// A tokenizer trained on ramps for `steps` steps.
std::shared_ptr<VqVaeImpl> trained_tokenizer(int64_t steps, std::vector<double>* losses = nullptr,
                                             double* perplexity = nullptr) {
  const auto images = ramps(32, 16, 3);
  torch::manual_seed(4);
  auto vqvae = std::make_shared<VqVaeImpl>(tiny_vit(), tiny_tokenizer());
  torch::optim::AdamW adam(vqvae->parameters(), torch::optim::AdamWOptions(2e-3));
  for (int64_t step = 1; step <= steps; ++step) {
    const auto out = vqvae->step({images});
    adam.zero_grad();
    out.loss.backward();
    adam.step();
    vqvae->after_optimizer_step(step, steps);
    if (losses) losses->push_back(out.logs.at("reconstruction").item<double>());
    if (perplexity) *perplexity = out.logs.at("perplexity").item<double>();
  }
  return vqvae;
}

TEST(VqVae, AShortRunReconstructsWithManyCodesInUse) {
  std::vector<double> losses;
  double perplexity = 0;
  trained_tokenizer(120, &losses, &perplexity);
  EXPECT_LT(mean_of(losses, 115, 5), 0.3 * mean_of(losses, 0, 5))
      << mean_of(losses, 0, 5) << " -> " << mean_of(losses, 115, 5);
  // 32 ramps x 16 patches over 32 entries: far from one code for all.
  EXPECT_GT(perplexity, 6) << perplexity;
}

TEST(Beit, MasksAreBlocksDrawnForTheGlobalBatch) {
  const auto all = block_mask_rows(6, 14, 0.4, 16, 0.3, step_generator(7, 2));
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{6, 196}));
  // At least one block of 16 patches, at most the target of 78.4.
  EXPECT_TRUE(all.sum(1).ge(16).all().item<bool>()) << all.sum(1);
  EXPECT_TRUE(all.sum(1).le(78).all().item<bool>()) << all.sum(1);
  EXPECT_GT(all.mean().item<double>(), 0.3);
  EXPECT_FALSE(torch::equal(all[0], all[1]));
  const auto rows = block_mask_rows(2, 14, 0.4, 16, 0.3, step_generator(7, 2), BatchSlice{4, 6});
  EXPECT_TRUE(torch::equal(rows, all.slice(0, 4, 6)));
}

TEST(Beit, TheLossIsTheCrossEntropyOfTheMaskedPatchesTokensByHand) {
  torch::manual_seed(5);
  auto tokenizer = std::make_shared<VqVaeImpl>(tiny_vit(), tiny_tokenizer());
  auto vit = tiny_vit();
  BeitImpl beit(vit, tokenizer, BeitOptions().tokenizer("t.pt"));
  const auto images = torch::randn({3, 1, 16, 16});
  const auto out = beit.step({images});
  const auto mask = beit.masks(3, 4);
  const auto targets = tokenizer->codes(images);
  auto parameters = beit.named_parameters();
  torch::NoGradGuard no_grad;
  const auto tokens =
      vit->final_tokens(images, mask, parameters["mask_token"]).slice(1, vit->prefix_count());
  const auto logits =
      torch::matmul(tokens, parameters["lm_head.weight"].t()) + parameters["lm_head.bias"];
  double sum = 0, correct = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < 3; ++b)
    for (int64_t n = 0; n < 16; ++n)
      if (mask[b][n].item<float>() == 1) {
        const auto row = logits[b][n].to(torch::kFloat64);
        const int64_t target = targets[b][n].item<int64_t>();
        sum += -(row[target] - row.exp().sum().log()).item<double>();
        correct += row.argmax().item<int64_t>() == target ? 1 : 0;
        ++count;
      }
  ASSERT_GT(count, 0);
  EXPECT_NEAR(out.loss.item<double>(), sum / count, 1e-5);
  EXPECT_NEAR(out.logs.at("mim_accuracy").item<double>(), correct / count, 1e-9);
}

TEST(Beit, TokenizerAndViTMustShareTheirGridAndBands) {
  const auto tokenizer = std::make_shared<VqVaeImpl>(tiny_vit(), tiny_tokenizer());
  EXPECT_EQ(BeitOptions().mismatch("vit")->first, "tokenizer");
  EXPECT_EQ(BeitOptions().tokenizer("t.pt").mismatch("resnet50")->first, "name");
  EXPECT_FALSE(BeitOptions().tokenizer("t.pt").mismatch("vit").has_value());
  const auto key_of = [&](std::shared_ptr<ViTImpl> vit) {
    try {
      BeitImpl(std::move(vit), tokenizer, BeitOptions().tokenizer("t.pt"));
    } catch (const ConfigError& e) {
      return e.key();
    }
    return std::string("none");
  };
  EXPECT_EQ(key_of(tiny_vit(16, 2)), "tokenizer");     // an 8x8 grid against 4x4
  EXPECT_EQ(key_of(tiny_vit(16, 4, 2)), "tokenizer");  // 2 bands against 1
  EXPECT_EQ(key_of(tiny_vit(32, 8)), "none");          // 4x4 of 32 pixels: views resized
  EXPECT_EQ(key_of(tiny_vit(16, 4, 2, {1, 1})), "band_groups");
}

TEST(Beit, ViewsOfAnotherSizeAreResizedForTheTokenizer) {
  torch::manual_seed(6);
  const auto tokenizer = std::make_shared<VqVaeImpl>(tiny_vit(), tiny_tokenizer());
  BeitImpl beit(tiny_vit(32, 8), tokenizer, BeitOptions().tokenizer("t.pt"));
  const auto images = torch::randn({2, 1, 32, 32});
  const auto resized =
      torch::nn::functional::interpolate(images, torch::nn::functional::InterpolateFuncOptions()
                                                     .size(std::vector<int64_t>{16, 16})
                                                     .mode(torch::kBilinear)
                                                     .align_corners(false)
                                                     .antialias(true));
  EXPECT_TRUE(torch::equal(beit.targets(images), tokenizer->codes(resized)));
  EXPECT_TRUE(std::isfinite(beit.step({images}).loss.item<double>()));
}

TEST(Beit, AShortRunLearnsToPredictTheTokensOfMaskedPatches) {
  auto tokenizer = trained_tokenizer(60);
  std::map<std::string, torch::Tensor> frozen;
  for (const auto& p : tokenizer->named_parameters()) frozen[p.key()] = p.value().clone();
  const auto images = ramps(32, 16, 8);
  torch::manual_seed(9);
  BeitImpl beit(tiny_vit(), tokenizer, BeitOptions().tokenizer("t.pt"));
  std::vector<torch::Tensor> trainable;
  for (const auto& p : beit.parameters())
    if (p.requires_grad()) trainable.push_back(p);
  torch::optim::AdamW adam(trainable, torch::optim::AdamWOptions(2e-3));
  std::vector<double> losses, accuracy;
  for (int64_t step = 1; step <= 100; ++step) {
    const auto out = beit.step({images});
    adam.zero_grad();
    out.loss.backward();
    adam.step();
    beit.after_optimizer_step(step, 100);
    losses.push_back(out.loss.item<double>());
    accuracy.push_back(out.logs.at("mim_accuracy").item<double>());
  }
  EXPECT_LT(mean_of(losses, 95, 5), 0.6 * mean_of(losses, 0, 5))
      << mean_of(losses, 0, 5) << " -> " << mean_of(losses, 95, 5);
  EXPECT_GT(mean_of(accuracy, 95, 5), mean_of(accuracy, 0, 5) + 0.2);
  for (const auto& p : tokenizer->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), frozen.at(p.key()))) << p.key();
}

}  // namespace
}  // namespace pretext::methods
