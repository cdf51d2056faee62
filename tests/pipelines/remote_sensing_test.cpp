// Remote sensing through the command line: dated multispectral GeoTIFFs of four places (one date
// in another CRS) into temporal MoCo pretraining, k-NN with folder labels, export and inspect.

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "tests/io/test_data.h"
#include "tests/pipelines/run_cli.h"

namespace pretext::pipelines {
namespace {
namespace fs = std::filesystem;
using testing::SceneSpec;
using testing::TempDir;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Four places 5 km apart, "bright" and "dark" in the train split (places 0, 1) and the test split
// (2, 3), each on three dates (the last date of place 0 in WGS 84), 4 bands B02 B03 B04 B08 with
// a nodata border; names carry the dates.
void write_scenes(const std::string& root) {
  const char* dates[] = {"20230110", "20230301", "20230715"};
  for (int place = 0; place < 4; ++place) {
    const std::string label = place % 2 ? "dark" : "bright";
    const std::string folder = root + (place < 2 ? "/train/" : "/test/") + label;
    fs::create_directories(folder);
    const double east = 500000 + 5000 * place;
    for (int d = 0; d < 3; ++d) {
      SceneSpec scene;
      if (place == 0 && d == 2) {
        scene = testing::wgs84_ground_scene(east - 100, 4997900, east + 2100, 5000100, 0.0003);
      } else {
        scene.transform = {east, 30, 0, 5000000, 0, -30};
        scene.pixels = testing::ground_pixels(32632, scene.transform, 64, 64);
      }
      const auto base = scene.pixels[0] * (place % 2 ? 0.4 : 1.0) + 100 * d;
      scene.pixels = torch::stack({base, base * 1.1, base * 0.9, base * 1.5 + 200});
      scene.pixels.slice(2, 0, 3).fill_(0);
      scene.nodata = 0;
      scene.descriptions = {"B02", "B03", "B04", "B08"};
      scene.scale = 0.0001;
      testing::write_scene(folder + "/place" + std::to_string(place) + "_" + dates[d] + ".tif",
                           scene);
    }
  }
}

const char* const kMoco = R"(model:
  backbone: resnet18
  width_multiplier: 0.125
  small_stem: true
method:
  name: moco
  version: 2
  projection_dim: 8
  projection_hidden_dim: 16
  queue_size: 64
)";

// SatMAE on a ViT with the visible bands and the near infrared as two groups.
const char* const kSatMae = R"(model:
  backbone: vit
  image_size: 16
  patch_size: 4
  dim: 32
  depth: 1
  heads: 2
  mlp_ratio: 2
  band_groups: [3, 1]
  position_embedding: sincos
  class_token: false
  pool: mean
method:
  name: satmae
  mask_ratio: 0.75
  masking: consistent
  decoder_dim: 16
  decoder_depth: 1
  decoder_heads: 2
)";

std::string config_text(const TempDir& dir, const std::string& extra_data,
                        const std::string& model_and_method = kMoco) {
  return "run:\n  dir: " + (dir / "run") + "\n  seed: 2\n  threads: 2\n" +
         "data:\n  root: " + (dir / "scenes") + R"(
  kind: rasters
  split: train
  image_size: 16
  band_names: [B04, B03, B02, B08]
  date_pattern: '_(\d{8})\.tif$'
  min_valid_fraction: 0.9
  min_gap_days: 10
  statistics_windows: 64
)" + extra_data +
         R"(augment:
  size: 16
  crop_scale_min: 0.5
  jitter_p: 0
  blur_p: 0
  rotate90_p: 0.5
  band_jitter_p: 0.5
  band_dropout_p: 0.1
)" + model_and_method +
         R"(train:
  batch_size: 16
  epochs: 2
  optimizer: sgd
  lr: 0.05
  log_every: 1
eval:
  k: [1]
)";
}

// Without train / test folders, hold-outs take whole places: the dates of one place (each its own
// scene and file) never sit on both sides of k-NN, though examples here are single dates.
TEST(RemoteSensing, HoldOutsTakeWholePlaces) {
  TempDir dir;
  const char* dates[] = {"20230110", "20230301", "20230715"};
  for (int place = 0; place < 6; ++place) {
    const std::string label = place % 2 ? "dark" : "bright";
    fs::create_directories(dir / ("scenes/" + label));
    const double east = 500000 + 5000 * place;
    for (int d = 0; d < 3; ++d) {
      SceneSpec scene;
      scene.transform = {east, 30, 0, 5000000, 0, -30};
      scene.pixels = testing::ground_pixels(32632, scene.transform, 64, 64);
      const auto base = scene.pixels[0] * (place % 2 ? 0.4 : 1.0) + 100 * d;
      scene.pixels = torch::stack({base, base * 1.1, base * 0.9, base * 1.5 + 200});
      scene.descriptions = {"B02", "B03", "B04", "B08"};
      testing::write_scene(
          dir / ("scenes/" + label + "/place" + std::to_string(place) + "_" + dates[d] + ".tif"),
          scene);
    }
  }
  testing::write_text(dir / "run.yaml", config_text(dir, ""));
  const std::string options = " --config " + (dir / "run.yaml") + " --random-init";
  run_every_evaluation(options);
  // 6 places x 3 dates x 16 windows; 20% of each class's 3 places (at least one) in test, for
  // every evaluation.
  for (const char* file : {"knn.json", "probe.json", "finetune.json"}) {
    const auto json = nlohmann::json::parse(read_text(dir / ("run/" + std::string(file))));
    EXPECT_EQ(json["groups"]["test"], 2) << file;
    EXPECT_EQ(json["examples"]["test"], 2 * 3 * 16) << file;
  }
  auto knn = nlohmann::json::parse(read_text(dir / "run/knn.json"));
  EXPECT_EQ(knn["groups"]["train"], 4);
  // Fine-tuning validates on a place of each class from the training places.
  const auto finetune = nlohmann::json::parse(read_text(dir / "run/finetune.json"));
  EXPECT_EQ(finetune["groups"]["train"], 2);
  EXPECT_EQ(finetune["groups"]["val"], 2);
  // By file, dates of one place are apart: 20% of each class's 9 scenes.
  run_pretext("knn --config " + (dir / "run.yaml") + " --random-init --set eval.group_by=file");
  knn = nlohmann::json::parse(read_text(dir / "run/knn.json"));
  EXPECT_EQ(knn["groups"]["test"], 4);
  EXPECT_EQ(knn["examples"]["test"], 4 * 16);
}

TEST(RemoteSensing, TemporalMocoOnDatedScenesThenKnnAndExport) {
  TempDir dir;
  write_scenes(dir / "scenes");
  testing::write_text(dir / "run.yaml", config_text(dir, "  frames: 2\n"));
  const auto printed = run_pretext("pretrain --config " + (dir / "run.yaml"));
  // The train split: 2 places x 3 dates.
  EXPECT_NE(printed.find("6 scenes in 2 places"), std::string::npos) << printed;
  EXPECT_NE(printed.find("series of 2 dates"), std::string::npos) << printed;
  EXPECT_NE(printed.find("bands B04, B03, B02, B08"), std::string::npos) << printed;
  EXPECT_NE(printed.find("band statistics of"), std::string::npos) << printed;
  const auto log = read_text(dir / "run/run.log");
  EXPECT_NE(log.find("1 warped onto the first one's grid"), std::string::npos) << log;
  EXPECT_NE(log.find("3 dates from 2023-01-10 to 2023-07-15"), std::string::npos) << log;
  ASSERT_TRUE(fs::exists(dir / "run/band_stats.json"));
  const auto stats = nlohmann::json::parse(read_text(dir / "run/band_stats.json"));
  ASSERT_EQ(stats["mean"].size(), 4u);
  // B08 (band 4) = 1.5 x B02 + 200 stored, x 0.0001: its mean is above B04's.
  EXPECT_GT(stats["mean"][3].get<double>(), stats["mean"][0].get<double>());

  // k-NN on single dates with folder labels reuses the statistics.
  const auto knn = run_pretext("knn --config " + (dir / "run.yaml"));
  EXPECT_NE(knn.find("band statistics from"), std::string::npos) << knn;
  EXPECT_NE(knn.find("k-NN k=1: top-1"), std::string::npos) << knn;
  run_pretext("export --config " + (dir / "run.yaml"));
  const auto sidecar = nlohmann::json::parse(read_text(dir / "run/encoder.json"));
  const auto& pre = sidecar["preprocessing"];
  ASSERT_EQ(pre["mean"].size(), 4u);
  EXPECT_NEAR(pre["mean"][2].get<double>(), stats["mean"][2].get<double>(), 1e-9);
  EXPECT_EQ(pre["band_names"][3], "B08");
  EXPECT_EQ(sidecar["backbone"]["in_channels"], 4);
}

TEST(RemoteSensing, FramesMustMatchTheMethodsViews) {
  TempDir dir;
  write_scenes(dir / "scenes");
  testing::write_text(dir / "run.yaml", config_text(dir, "  frames: 3\n"));
  const auto printed = run_pretext("pretrain --config " + (dir / "run.yaml"), 2);
  EXPECT_NE(printed.find("data.frames"), std::string::npos) << printed;
  EXPECT_NE(printed.find("3 dates per example, but moco takes 2 views"), std::string::npos)
      << printed;
}

TEST(RemoteSensing, SatMaeOnThreeDatesWithBandGroupsThenKnn) {
  TempDir dir;
  write_scenes(dir / "scenes");
  testing::write_text(dir / "run.yaml",
                      config_text(dir, "  frames: 3\n  window_placement: random\n", kSatMae));
  const auto printed = run_pretext("pretrain --config " + (dir / "run.yaml"));
  EXPECT_NE(printed.find("series of 3 dates"), std::string::npos) << printed;
  EXPECT_NE(read_text(dir / "run/config.yaml").find("window_placement: random"), std::string::npos);
  // Each band group's loss is in the log, and the run ends with a finite loss.
  const auto log = read_text(dir / "run/run.log");
  EXPECT_NE(log.find("loss_group_0"), std::string::npos) << log;
  EXPECT_NE(log.find("loss_group_1"), std::string::npos) << log;
  const auto metrics = read_text(dir / "run/metrics.csv");
  EXPECT_EQ(metrics.find("nan"), std::string::npos) << metrics;
  // The grouped encoder evaluates single dates and exports with its groups.
  const auto knn = run_pretext("knn --config " + (dir / "run.yaml"));
  EXPECT_NE(knn.find("k-NN k=1: top-1"), std::string::npos) << knn;
  run_pretext("export --config " + (dir / "run.yaml"));
  const auto sidecar = nlohmann::json::parse(read_text(dir / "run/encoder.json"));
  EXPECT_EQ(sidecar["backbone"]["band_groups"], nlohmann::json::array({3, 1})) << sidecar;
  // The report shows the first date of each stack and the grouped ViT's attention.
  run_pretext("report --config " + (dir / "run.yaml"));
  EXPECT_NE(read_text(dir / "run/report.html").find("attention maps"), std::string::npos);

  // Groups that do not hold the data's 4 bands: the config key, and exit 2.
  auto text = config_text(dir, "  frames: 3\n", kSatMae);
  text.replace(text.find("[3, 1]"), 6, "[2, 1]");
  text.replace(text.find(dir / "run"), (dir / "run").size(), dir / "bad_run");
  testing::write_text(dir / "bad.yaml", text);
  const auto bad = run_pretext("pretrain --config " + (dir / "bad.yaml"), 2);
  EXPECT_NE(bad.find("model.band_groups"), std::string::npos) << bad;
  EXPECT_NE(bad.find("the groups hold 3 bands, the data has 4"), std::string::npos) << bad;
}

TEST(RemoteSensing, InspectRasterTellsBandsGridOverviewsAndDate) {
  TempDir dir;
  SceneSpec scene;
  scene.pixels = testing::ground_pixels(32632, scene.transform, 64, 64);
  scene.descriptions = {"B08"};
  scene.scale = 0.0001;
  scene.offset = -0.1;
  scene.nodata = 0;
  scene.overviews = {2, 4};
  scene.metadata = {{"ACQUISITION_DATE", "2023-06-15"}};
  testing::write_scene(dir / "s2.tif", scene);
  const auto printed = run_pretext("inspect " + (dir / "s2.tif"));
  for (const char* expected :
       {"64 x 64 pixels", "uint16  \"B08\"  nodata 0", "value = stored x 0.0001 + -0.1",
        "WGS 84 / UTM zone 32N", "gsd      10 map units per pixel", "blocks   32 x 32",
        "overviews 32x32 16x16", "date     2023-06-15 (ACQUISITION_DATE)"})
    EXPECT_NE(printed.find(expected), std::string::npos) << expected << "\n" << printed;
}

}  // namespace
}  // namespace pretext::pipelines
