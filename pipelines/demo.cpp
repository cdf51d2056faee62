#include "pipelines/demo.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/gdal_raster.h"
#include "pipelines/checkpoint.h"
#include "pipelines/commands.h"
#include "pipelines/run_dir.h"

namespace pretext::pipelines {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
namespace {

constexpr int64_t kSide = 32;
const char* const kClasses[] = {"stripes", "crossed", "blobs", "spots"};

double uniform(at::Generator& g, double low, double high) {
  return low + (high - low) * torch::rand({1}, g, torch::kFloat64).item<double>();
}

// Gaussian smoothing with wrap-around, sigma in pixels, of [kSide, kSide].
torch::Tensor smooth(const torch::Tensor& image, double sigma) {
  const auto t = torch::arange(-6, 7, torch::kFloat64);
  auto k = torch::exp(-t * t / (2 * sigma * sigma));
  k = k / k.sum();
  auto x = F::pad(image.view({1, 1, kSide, kSide}),
                  F::PadFuncOptions({6, 6, 6, 6}).mode(torch::kCircular));
  x = F::conv2d(x, k.view({1, 1, 1, -1}));
  x = F::conv2d(x, k.view({1, 1, -1, 1}));
  return x[0][0];
}

// A texture in [-1, 1], [kSide, kSide]. Each class is a kind of structure, not a scale: period,
// orientation and phase are random within every class, so frequency alone does not tell them apart.
torch::Tensor texture(int64_t cls, at::Generator& g) {
  const auto axis = torch::arange(kSide, torch::kFloat64);
  const auto y = axis.view({-1, 1}).expand({kSide, kSide});
  const auto x = axis.view({1, -1}).expand({kSide, kSide});
  const double angle = uniform(g, 0, M_PI);
  const double period = uniform(g, 4, 10);
  const auto along = x * std::cos(angle) + y * std::sin(angle);
  const auto across = -x * std::sin(angle) + y * std::cos(angle);
  switch (cls) {
    case 0:
      return torch::sin(2 * M_PI * along / period + uniform(g, 0, 2 * M_PI));
    case 1:
      return torch::sin(2 * M_PI * along / period + uniform(g, 0, 2 * M_PI)) *
             torch::sin(2 * M_PI * across / period + uniform(g, 0, 2 * M_PI));
    case 2: {
      const auto blobs = smooth(torch::randn({kSide, kSide}, g, torch::kFloat64), period / 4);
      return blobs / blobs.abs().max();
    }
    default: {
      // A few bright spots on a dark ground.
      auto spots = (torch::rand({kSide, kSide}, g, torch::kFloat64) < 0.02).to(torch::kFloat64);
      spots = smooth(spots, period / 6);
      return spots / spots.max().clamp_min(1e-9) * 2 - 1;
    }
  }
}

}  // namespace

void generate_demo_tiles(const std::string& root, int64_t tiles_per_class, int64_t seed) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed) + 7919);
  io::Georeference geo;
  geo.crs_wkt = io::crs_wkt_from_epsg(32632);
  for (int64_t cls = 0; cls < 4; ++cls) {
    for (const char* split : {"train", "test"}) {
      std::error_code error;
      fs::create_directories(fs::path(root) / split / kClasses[cls], error);
      if (error) throw InputError(root + ": cannot create demo folders (" + error.message() + ")");
    }
    for (int64_t i = 0; i < tiles_per_class; ++i) {
      const auto pattern = texture(cls, g);
      // Nuisances within what the augmentation varies (brightness, contrast, crop, turns), so
      // that SimCLR learns to ignore them while a random encoder's features follow them.
      const double gain = uniform(g, 0.2, 0.4);
      const double offset = uniform(g, 0.25, 0.5);
      std::vector<torch::Tensor> bands;
      for (int b = 0; b < 3; ++b) {
        const double mix = uniform(g, 0.9, 1.1);
        bands.push_back(offset * mix + gain * pattern +
                        0.05 * torch::randn({kSide, kSide}, g, torch::kFloat64));
      }
      const auto pixels = torch::stack(bands).clamp(0, 1) * 255;
      // A 10 m grid, each tile at its own place.
      geo.geo_transform = {500000.0 + 320.0 * i, 10.0, 0.0, 5500000.0 - 320.0 * cls, 0.0, -10.0};
      char name[32];
      std::snprintf(name, sizeof name, "%04ld.tif", static_cast<long>(i));
      const char* split = i < tiles_per_class * 4 / 5 ? "train" : "test";
      io::write_geotiff((fs::path(root) / split / kClasses[cls] / name).string(), pixels,
                        io::DataType::kUInt8, geo);
    }
  }
}

std::pair<double, double> run_demo(const DemoOptions& options) {
  // Absolute, so that the written config works from any folder.
  const fs::path dir = fs::absolute(options.dir());
  const std::string data = (dir / "tiles").string();
  RunLog log;
  std::cerr << "demo: writing " << 4 * options.tiles_per_class() << " GeoTIFF tiles to " << data
            << "\n";
  generate_demo_tiles(data, options.tiles_per_class(), options.seed());
  const std::string config_path = (dir / "simclr_demo.yaml").string();
  std::ofstream(config_path) << "# Written by `pretext demo`; run it yourself with\n"
                             << "#   pretext pretrain --config " << config_path << "\n"
                             << "run:\n  dir: " << (dir / "run").string()
                             << "\n  seed: " << options.seed() << "\n"
                             << "data:\n  root: " << data << "\n  split: train\n  image_size: 32\n"
                             << "model:\n  backbone: resnet18\n  width_multiplier: 0.25\n"
                             << "  small_stem: true\n"
                             << "method:\n  name: simclr\n  temperature: 0.2\n"
                             << "augment:\n  size: 32\n  crop_scale_min: 0.3\n  rotate90_p: 0.5\n"
                             << "  vflip_p: 0.5\n  mean: [0.5]\n  std: [0.25]\n"
                             << "train:\n  batch_size: 256\n  max_steps: " << options.steps()
                             << "\n  epochs: 1000\n  optimizer: adamw\n  lr: 0.002\n"
                             << "  weight_decay: 0.0001\n  warmup_steps: 20\n"
                             << "  checkpoint_every: 100\n"
                             << "eval:\n  k: [20]\n";
  const auto config = load_run_config(config_path, {});
  // A fresh run each time: the demo's checkpoint would otherwise refuse a changed config.
  std::error_code ignored;
  fs::remove_all(config.run.dir(), ignored);

  pretrain(config, false, "", log);  // also sets threads and checks the BLAS for what follows
  const auto tiles = open_data(config, DataUse::kEvaluation, log);
  auto random_method = config.build_method(tiles.bands());
  const double random =
      evaluate_knn(config, *random_method->encoder(), tiles, log).at(0).metrics.top1;
  auto trained = config.build_method(tiles.bands());
  load_checkpoint(RunDir(config.run.dir()).checkpoint(), *trained, nullptr, torch::Device("cpu"));
  const double pretrained =
      evaluate_knn(config, *trained->encoder(), tiles, log).at(0).metrics.top1;

  std::printf("\n%-34s %s\n", "encoder (ResNet-18, width 0.25)", "k-NN top-1 (k=20, 4 classes)");
  std::printf("%-34s %5.1f%%\n", "random init", 100 * random);
  char label[64];
  std::snprintf(label, sizeof label, "SimCLR, %ld steps", static_cast<long>(options.steps()));
  std::printf("%-34s %5.1f%%\n", label, 100 * pretrained);
  std::printf("\nRun directory: %s (config.yaml, metrics.csv, run.log, checkpoint.pt)\n",
              config.run.dir().c_str());
  return {random, pretrained};
}

}  // namespace pretext::pipelines
