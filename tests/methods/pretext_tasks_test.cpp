// The classic pretext tasks: the autoencoder's corruption and decoder, rotation's four turns and
// its loss by hand, the jigsaw's order set against the reference's selection and its puzzles
// pixel by pixel, and short runs of each that learn their task.
#include <cmath>
#include <set>
#include <vector>

#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "methods/autoencoder.h"
#include "methods/jigsaw.h"
#include "methods/pixels.h"
#include "methods/resnet.h"
#include "methods/rotation.h"
#include "methods/vit.h"

namespace pretext::methods {
namespace {

std::shared_ptr<BackboneImpl> tiny_resnet(int64_t bands = 3) {
  return std::make_shared<ResNetImpl>(
      ResNetOptions(18).width_multiplier(0.125).small_stem(true).in_channels(bands));
}

TEST(Autoencoder, DecodesToTheImageSizeAndBands) {
  torch::manual_seed(0);
  AutoencoderImpl ae(tiny_resnet(4), AutoencoderOptions().decoder_channels(16));
  const auto features = torch::randn({2, ae.encoder()->feature_dim()});
  // 4 x 2^3 = 32 pixels, resampled to 28; 4 bands as the encoder takes.
  EXPECT_EQ(ae.decode(features, 28).sizes(), (std::vector<int64_t>{2, 4, 28, 28}));
  EXPECT_EQ(ae.decode(features, 32).sizes(), (std::vector<int64_t>{2, 4, 32, 32}));
  EXPECT_EQ(ae.view_count(), 1);
}

TEST(Autoencoder, TheLossIsTheMeanSquaredErrorOfTheDecodedImage) {
  torch::manual_seed(1);
  AutoencoderImpl ae(tiny_resnet(1), AutoencoderOptions().decoder_channels(8).decoder_stages(2));
  ae.eval();  // batch norm on running statistics: the same decode twice
  const auto images = torch::randn({3, 1, 16, 16});
  const auto out = ae.step({images});
  const auto decoded = ae.decode(ae.encoder()->forward(images), 16);
  double expected = 0;
  const auto a = decoded.accessor<float, 4>();
  const auto b = images.accessor<float, 4>();
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t y = 0; y < 16; ++y)
      for (int64_t x = 0; x < 16; ++x) expected += std::pow(a[i][0][y][x] - b[i][0][y][x], 2);
  EXPECT_NEAR(out.loss.item<double>(), expected / (3 * 16 * 16), 1e-5);
}

TEST(Autoencoder, CorruptionHidesWholeBlocksAndAddsNoiseOfTheGivenSpread) {
  torch::manual_seed(2);
  AutoencoderImpl masking(tiny_resnet(2), AutoencoderOptions().mask_ratio(0.4).mask_patch(4));
  const auto images = torch::rand({64, 2, 16, 16}) + 1;  // nowhere 0
  // A generator's state moves on with each draw: a fresh one of step 3 for each call.
  const auto hidden = masking.corrupt(images, step_generator(7, 3)).eq(0);
  // Each 4x4 block is hidden in every band or in none, and otherwise left as it was.
  const auto blocks = hidden.to(torch::kFloat32).view({64, 2, 4, 4, 4, 4}).mean({1, 3, 5});
  EXPECT_TRUE(torch::logical_or(blocks.eq(0), blocks.eq(1)).all().item<bool>());
  EXPECT_NEAR(blocks.mean().item<double>(), 0.4, 0.03);  // of 1,024 blocks
  const auto kept = masking.corrupt(images, step_generator(7, 3));
  EXPECT_TRUE(torch::equal(kept.masked_select(~hidden), images.masked_select(~hidden)));
  // Another step hides other blocks.
  EXPECT_FALSE(torch::equal(kept, masking.corrupt(images, step_generator(7, 4))));

  AutoencoderImpl noising(tiny_resnet(2), AutoencoderOptions().noise_std(0.3));
  const auto noise = noising.corrupt(images, step_generator(7, 3)) - images;
  EXPECT_NEAR(noise.mean().item<double>(), 0, 0.01);  // of 32,768 draws
  EXPECT_NEAR(noise.std().item<double>(), 0.3, 0.01);
  EXPECT_TRUE(torch::equal(
      AutoencoderImpl(tiny_resnet(2), AutoencoderOptions()).corrupt(images, step_generator(7, 3)),
      images));
}

TEST(Rotation, FourRotationsTurnCounterClockwise) {
  const auto images = torch::arange(2 * 3 * 3, torch::kFloat32).view({2, 1, 3, 3});
  const auto turned = four_rotations(images);
  ASSERT_EQ(turned.sizes(), (std::vector<int64_t>{8, 1, 3, 3}));
  const auto a = images.accessor<float, 4>();
  const auto t = turned.accessor<float, 4>();
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 3; ++x) {
        EXPECT_EQ(t[i][0][y][x], a[i][0][y][x]);
        // A quarter turn counter-clockwise: the right column becomes the top row.
        EXPECT_EQ(t[2 + i][0][y][x], a[i][0][x][2 - y]);
        EXPECT_EQ(t[4 + i][0][y][x], a[i][0][2 - y][2 - x]);
        EXPECT_EQ(t[6 + i][0][y][x], a[i][0][2 - x][y]);
      }
}

TEST(Rotation, TheLossIsTheCrossEntropyOfTheTurnsByHand) {
  // Raw pixels as the encoder, so the logits are the linear head's of the turned pixels.
  torch::manual_seed(3);
  auto pixels = std::make_shared<PixelsImpl>(PixelsOptions().size(3).in_channels(1));
  RotationImpl rotation(pixels, RotationOptions());
  const auto images = torch::randn({2, 1, 3, 3});
  const auto out = rotation.step({images});
  const auto params = rotation.named_parameters();
  const auto weight = params["head.layers.0.weight"], bias = params["head.layers.0.bias"];
  ASSERT_EQ(weight.sizes(), (std::vector<int64_t>{4, 9}));
  const auto turned = four_rotations(images).view({8, 9});
  double expected = 0;
  for (int64_t i = 0; i < 8; ++i) {
    std::vector<double> logit(4);
    double sum = 0;
    for (int64_t k = 0; k < 4; ++k) {
      logit[k] = bias[k].item<double>();
      for (int64_t j = 0; j < 9; ++j)
        logit[k] += weight[k][j].item<double>() * turned[i][j].item<double>();
      sum += std::exp(logit[k]);
    }
    expected -= (logit[i / 2] - std::log(sum)) / 8;  // images 2k and 2k + 1 turned k times
  }
  EXPECT_NEAR(out.loss.item<double>(), expected, 1e-5);
}

TEST(Jigsaw, OrdersAreTheReferencesMaximalHammingSelection) {
  // Golden rows from an independent NumPy run of the reference's select_permutations.py
  // ('max', starting from the identity, lexicographic candidates).
  const auto orders = maximal_hamming_permutations(9, 100);
  ASSERT_EQ(orders.sizes(), (std::vector<int64_t>{100, 9}));
  const std::vector<std::vector<int64_t>> golden = {
      {0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 0, 3, 2, 5, 4, 7, 8, 6}, {2, 3, 0, 1, 6, 7, 8, 4, 5},
      {3, 2, 1, 0, 7, 8, 5, 6, 4}, {4, 5, 6, 7, 8, 0, 1, 2, 3}, {5, 4, 7, 8, 0, 6, 2, 3, 1}};
  for (size_t r = 0; r < golden.size(); ++r)
    for (int64_t j = 0; j < 9; ++j) EXPECT_EQ(orders[r][j].item<int64_t>(), golden[r][j]);
  const std::vector<int64_t> last = {8, 1, 2, 3, 4, 5, 6, 7, 0};
  for (int64_t j = 0; j < 9; ++j) EXPECT_EQ(orders[99][j].item<int64_t>(), last[j]);
  std::set<std::vector<int64_t>> distinct;
  for (int64_t r = 0; r < 100; ++r) {
    const auto row = orders[r];
    distinct.insert(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + 9));
  }
  EXPECT_EQ(distinct.size(), 100u);
  // All 24 orders of 4 tiles, each once.
  const auto codes =
      (maximal_hamming_permutations(4, 24) * torch::tensor({1000, 100, 10, 1})).sum(1);
  std::set<int64_t> all(codes.data_ptr<int64_t>(), codes.data_ptr<int64_t>() + 24);
  EXPECT_EQ(all.size(), 24u);
}

TEST(Jigsaw, NeedsABackboneOfAnySizeAndEnoughOrders) {
  EXPECT_EQ(JigsawOptions().mismatch("vit")->first, "name");
  EXPECT_EQ(JigsawOptions().grid(2).permutations(30).mismatch("resnet18")->first, "permutations");
  EXPECT_FALSE(JigsawOptions().grid(2).permutations(24).mismatch("resnet18").has_value());
}

TEST(Jigsaw, PuzzlesAreJitteredTilesOfTheirCellsInTheDrawnOrder) {
  // Pixel values are their coordinates, y x 100 + x, so each tile says where it came from.
  torch::manual_seed(4);
  const int64_t side = 30, grid = 3, cell = 10;
  JigsawImpl jigsaw(tiny_resnet(1), JigsawOptions()
                                        .grid(grid)
                                        .permutations(10)
                                        .tile_fraction(0.7)
                                        .normalise_tiles(false)
                                        .tile_dim(8)
                                        .hidden_dim(8));
  const auto coordinates = torch::arange(side, torch::kFloat32);
  const auto image = (coordinates.view({side, 1}) * 100 + coordinates.view({1, side}));
  const auto images = image.view({1, 1, side, side}).repeat({16, 1, 1, 1});
  const auto [tiles, order] = jigsaw.puzzles(images, step_generator(1, 1));
  ASSERT_EQ(tiles.sizes(), (std::vector<int64_t>{16, 9, 1, 7, 7}));
  std::set<int64_t> orders, offsets;
  for (int64_t b = 0; b < 16; ++b) {
    const int64_t o = order[b].item<int64_t>();
    orders.insert(o);
    for (int64_t j = 0; j < 9; ++j) {
      const int64_t shown = jigsaw.permutations()[o][j].item<int64_t>();
      const auto tile = tiles[b][j][0];
      const auto corner = static_cast<int64_t>(tile[0][0].item<float>());
      const int64_t y = corner / 100, x = corner % 100;
      // Inside the cell of tile `shown`, 0-3 pixels from its corner.
      EXPECT_EQ(y / cell, shown / grid);
      EXPECT_EQ(x / cell, shown % grid);
      EXPECT_LE(y % cell, cell - 7);
      EXPECT_LE(x % cell, cell - 7);
      offsets.insert(y % cell);
      EXPECT_TRUE(torch::equal(tile, image.slice(0, y, y + 7).slice(1, x, x + 7)));
    }
  }
  EXPECT_GT(orders.size(), 5u);   // of 10, for 16 images
  EXPECT_EQ(offsets.size(), 4u);  // 0, 1, 2, 3 among 144 tiles
  // Normalised tiles: each band of each tile of mean 0 and spread 1.
  JigsawImpl normalising(tiny_resnet(1), JigsawOptions().grid(grid).permutations(10));
  const auto normalised = normalising.puzzles(images, step_generator(1, 1)).first;
  EXPECT_LT(normalised.mean({3, 4}).abs().max().item<double>(), 1e-4);
  EXPECT_NEAR(normalised.std({3, 4}, /*unbiased=*/false).mean().item<double>(), 1, 1e-4);
}

// Images with an up and a layout: a bright bar along the top, a colour per class, noise.
torch::Tensor oriented_images(int64_t count, int64_t side) {
  auto images = torch::rand({count, 3, side, side}) * 0.3;
  images.slice(2, 0, side / 4) += torch::rand({count, 3, 1, 1}) + 0.5;
  images.slice(3, 0, side / 4).slice(2, side / 2) += 0.8;  // a mark at the bottom left
  return images;
}

struct Run {
  double first_loss = 0, last_loss = 0, last_accuracy = 0, last_std = 0;
};

Run short_run(MethodImpl& method, const torch::Tensor& images, int64_t steps) {
  torch::optim::AdamW optimizer(method.parameters(),
                                torch::optim::AdamWOptions(1e-3).weight_decay(1e-4));
  Run run;
  for (int64_t step = 0; step < steps; ++step) {
    const auto out = method.step({images});
    optimizer.zero_grad();
    out.loss.backward();
    optimizer.step();
    method.after_optimizer_step(step + 1, steps);
    if (step < 5) run.first_loss += out.loss.item<double>() / 5;
    if (step >= steps - 5) {
      run.last_loss += out.loss.item<double>() / 5;
      run.last_std += out.logs.at("embedding_std").item<double>() / 5;
      if (out.logs.count("accuracy"))
        run.last_accuracy += out.logs.at("accuracy").item<double>() / 5;
    }
  }
  return run;
}

TEST(PretextTasks, ShortRunsLearnTheirTasks) {
  torch::manual_seed(5);
  const auto images = oriented_images(32, 16);
  AutoencoderImpl ae(tiny_resnet(), AutoencoderOptions().decoder_channels(16).noise_std(0.1));
  const auto a = short_run(ae, images, 60);
  EXPECT_LT(a.last_loss, 0.5 * a.first_loss) << a.first_loss << " -> " << a.last_loss;
  EXPECT_GT(a.last_std, 0.01);

  RotationImpl rotation(tiny_resnet(), RotationOptions());
  const auto r = short_run(rotation, images, 40);
  EXPECT_LT(r.last_loss, r.first_loss);
  EXPECT_GT(r.last_accuracy, 0.9);  // chance: 0.25
  EXPECT_GT(r.last_std, 0.01);

  JigsawImpl jigsaw(tiny_resnet(),
                    JigsawOptions().grid(2).permutations(24).tile_dim(32).hidden_dim(64));
  const auto j = short_run(jigsaw, images, 60);
  EXPECT_LT(j.last_loss, j.first_loss);
  EXPECT_GT(j.last_accuracy, 0.3);  // chance: 1 / 24
  EXPECT_GT(j.last_std, 0.01);
}

}  // namespace
}  // namespace pretext::methods
