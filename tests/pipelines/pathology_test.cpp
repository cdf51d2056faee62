// Pathology through the command line: whole-slide images into tissue tiles, pretraining,
// k-NN with slide-level labels, and inspect.

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "tests/io/slide_data.h"
#include "tests/io/test_data.h"
#include "tests/pipelines/run_cli.h"

namespace pretext::pipelines {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// Two classes told apart by stain colour, tissue on the left half of each slide.
void write_slides(const std::string& root) {
  int index = 0;
  for (const char* split : {"train", "test"})
    for (const char* label : {"pink", "purple"}) {
      fs::create_directories(root + "/" + split + "/" + label);
      for (int s = 0; s < (std::string(split) == "train" ? 2 : 1); ++s, ++index) {
        testing::SlideSpec spec;
        auto image = testing::tissue_image(512, 512, 0, 0, 512, 256);
        if (std::string(label) == "purple") image[0].slice(1, 0, 256) -= 60;
        spec.level0 = image;
        spec.levels = 2;
        write_slide(root + "/" + split + "/" + label + "/s" + std::to_string(index) + ".svs", spec);
      }
    }
  testing::write_text(root + "/train/README.txt", "not a slide");
}

// Slides under dir/slides and a config in dir/run.yaml: run and data sections (32-pixel tiles at
// 1 µm/px, training split) followed by `sections`.
void write_run(const TempDir& dir, const std::string& sections) {
  write_slides(dir / "slides");
  testing::write_text(dir / "run.yaml", "run:\n  dir: " + (dir / "run") +
                                            "\n  seed: 1\n  threads: 2\n" +
                                            "data:\n  root: " + (dir / "slides") +
                                            "\n  kind: slides\n  split: train\n  image_size: 32\n"
                                            "  microns_per_pixel: 1.0\n" +
                                            sections);
}

TEST(Pathology, TissueTilesPretrainAndEvaluate) {
  TempDir dir;
  write_run(dir, R"(  min_tissue_fraction: 0.5
augment:
  size: 32
  hed_p: 0.8
  rotate90_p: 0.5
  vflip_p: 0.5
model:
  backbone: resnet18
  width_multiplier: 0.125
  small_stem: true
method:
  name: simclr
  projection_dim: 16
train:
  batch_size: 16
  epochs: 2
  optimizer: sgd
  lr: 0.05
  log_every: 1
eval:
  k: [1]
)");
  const auto printed = run_pretext("pretrain --config " + (dir / "run.yaml"));
  // 4 training slides x (8 x 4 tissue tiles of 64 level-0 pixels).
  EXPECT_NE(printed.find("4 slides, 128 tissue tiles of 256 (128 rejected as background)"),
            std::string::npos)
      << printed;
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "run/thumbnails"), {}), 4);
  EXPECT_NE(read_text(dir / "run/run.log").find("32 of 64 tiles kept as tissue"),
            std::string::npos);
  const auto knn = run_pretext("knn --config " + (dir / "run.yaml"));
  EXPECT_NE(knn.find("k-NN k=1: top-1"), std::string::npos) << knn;
  const auto inspected = run_pretext("inspect " + (dir / "slides/train/pink/s0.svs"));
  for (const char* expected : {"vendor     aperio", "mpp        0.5 x 0.5", "objective  20x",
                               "  1  256 x 256  downsample 2  tiles 64 x 64", "tissue     50%"})
    EXPECT_NE(inspected.find(expected), std::string::npos) << inspected;
}

// Without train / test folders, hold-outs take whole slides: tiles of one slide never sit on both
// sides of k-NN.
TEST(Pathology, HoldOutsTakeWholeSlides) {
  TempDir dir;
  for (const char* label : {"pink", "purple"})
    for (int s = 0; s < 3; ++s) {
      testing::SlideSpec spec;
      auto image = testing::tissue_image(512, 512, 0, 0, 512, 256);
      if (std::string(label) == "purple") image[0].slice(1, 0, 256) -= 60;
      spec.level0 = image;
      spec.levels = 2;
      fs::create_directories(dir / ("flat/" + std::string(label)));
      write_slide(dir / ("flat/" + std::string(label) + "/s" + std::to_string(s) + ".svs"), spec);
    }
  testing::write_text(dir / "run.yaml",
                      "run:\n  dir: " + (dir / "run") + "\n  seed: 1\n  threads: 2\n" +
                          "data:\n  root: " + (dir / "flat") +
                          "\n  kind: slides\n  image_size: 32\n  microns_per_pixel: 1.0\n" +
                          "model:\n  backbone: resnet18\n  width_multiplier: 0.125\n" +
                          "  small_stem: true\naugment:\n  size: 32\neval:\n  k: [1]\n");
  const std::string options = " --config " + (dir / "run.yaml") + " --random-init";
  run_every_evaluation(options);
  // 6 slides of 32 tissue tiles; 20% of each class's 3 slides (at least one) in test, for every
  // evaluation.
  for (const char* file : {"knn.json", "probe.json", "finetune.json"}) {
    const auto json = nlohmann::json::parse(read_text(dir / ("run/" + std::string(file))));
    EXPECT_EQ(json["groups"]["test"], 2) << file;
    EXPECT_EQ(json["examples"]["test"], 64) << file;
  }
  const auto knn = nlohmann::json::parse(read_text(dir / "run/knn.json"));
  EXPECT_EQ(knn["groups"]["train"], 4);
  EXPECT_EQ(knn["examples"]["train"], 128);
  // Fine-tuning validates on a slide of each class from the training slides.
  const auto finetune = nlohmann::json::parse(read_text(dir / "run/finetune.json"));
  EXPECT_EQ(finetune["groups"]["train"], 2);
  EXPECT_EQ(finetune["groups"]["val"], 2);
  EXPECT_EQ(finetune["examples"]["val"], 64);
}

TEST(Pathology, ASlideWithoutAResolutionNamesTheConfigKeyThatFixesIt) {
  TempDir dir;
  write_run(dir, "model:\n  backbone: resnet18\n  width_multiplier: 0.125\n");
  testing::SlideSpec spec;
  spec.level0 = testing::tissue_image(256, 256, 0, 0, 256, 128);
  spec.vendor = "generic";
  spec.microns_per_pixel = 0;
  write_slide(dir / "slides/train/pink/unscaled.tif", spec);
  const auto printed = run_pretext("pretrain --config " + (dir / "run.yaml"), 2);
  EXPECT_NE(printed.find("unscaled.tif: OpenSlide: the slide states no microns per pixel (give a "
                         "fallback resolution) (" +
                         (dir / "run.yaml") + ": data.fallback_microns_per_pixel)"),
            std::string::npos)
      << printed;
}

TEST(Pathology, DinoMultiCropOnTilesRunsAndLogsCollapseMonitors) {
  TempDir dir;
  write_run(dir, R"(augment:
  size: 32
  local_size: 16
  crop_scale_min: 0.4
  hed_p: 0.5
  rotate90_p: 0.5
  vflip_p: 0.5
model:
  backbone: vit
  image_size: 32
  patch_size: 8
  dim: 32
  depth: 2
  heads: 2
method:
  name: dino
  out_dim: 128
  hidden_dim: 64
  bottleneck_dim: 16
  local_crops: 2
  warmup_teacher_temp: 0.04
  teacher_temp: 0.07
  warmup_teacher_steps: 4
train:
  batch_size: 16
  epochs: 1
  optimizer: adamw
  lr: 0.0005
  log_every: 1
eval:
  k: [1]
)");
  run_pretext("pretrain --config " + (dir / "run.yaml"));
  const auto log = read_text(dir / "run/run.log");
  for (const char* monitor : {"teacher_entropy", "teacher_mean_entropy", "teacher_embedding_std",
                              "teacher_temp 0.0475"})  // step 2 of a 4-step warm-up
    EXPECT_NE(log.find(monitor), std::string::npos) << monitor << "\n" << log;
  // Each command maps the tissue of each slide once: the report and its figures never open the
  // data again (run.log gets a line per slide per detection, a summary per opening).
  EXPECT_EQ(count_of(log, "s0.svs: 32 of 64 tiles kept as tissue"), 1u) << log;
  EXPECT_EQ(count_of(log, "tissue tiles of"), 1u) << log;
  // Evaluation and export use the teacher.
  EXPECT_NE(run_pretext("knn --config " + (dir / "run.yaml")).find("k-NN k=1"), std::string::npos);
  const auto knn_log = read_text(dir / "run/run.log");
  EXPECT_EQ(count_of(knn_log, "s0.svs: 32 of 64 tiles kept as tissue"), 2u) << knn_log;
  EXPECT_EQ(count_of(knn_log, "6 slides, 192 tissue tiles of 384"), 1u) << knn_log;
  EXPECT_EQ(count_of(knn_log, "tissue tiles of"), 2u) << knn_log;
  run_pretext("export --config " + (dir / "run.yaml"));
  EXPECT_TRUE(fs::exists(dir / "run/encoder.pt"));
  // The teacher's last-block attention over the first tiles, as PNG overlays.
  run_pretext("report --config " + (dir / "run.yaml"));
  EXPECT_TRUE(fs::exists(dir / "run/attention/0.png"));
  EXPECT_NE(read_text(dir / "run/report.html").find("attention maps"), std::string::npos);
}

}  // namespace
}  // namespace pretext::pipelines
