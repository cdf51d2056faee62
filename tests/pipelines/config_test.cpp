#include <filesystem>

#include <gtest/gtest.h>

#include "base/errors.h"
#include "pipelines/run_config.h"
#include "tests/io/test_data.h"

namespace pretext::pipelines {
namespace {

std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse_run_config(text, "run.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

constexpr const char* kValid = R"(run:
  dir: runs/x
  seed: 3
data:
  root: images/
  bands: [3, 2, 1]
model:
  backbone: resnet34
  width_multiplier: 0.5
method:
  name: simclr
  temperature: 0.1
train:
  lr: 0.05
  optimizer: adamw
eval:
  k: [10, 20]
)";

TEST(RunConfig, ReadsEveryKeyAndKeepsDefaults) {
  const auto config = parse_run_config(kValid, "run.yaml");
  EXPECT_EQ(config.run.seed(), 3);
  EXPECT_EQ(config.data.bands(), (std::vector<int64_t>{3, 2, 1}));
  EXPECT_EQ(config.backbone_name, "resnet34");
  EXPECT_DOUBLE_EQ(config.train.lr(), 0.05);
  EXPECT_EQ(config.train.optimizer(), OptimizerKind::kAdamw);
  EXPECT_EQ(config.train.batch_size(), 256);  // default
  EXPECT_EQ(config.eval.k(), (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(config.build_method(3)->encoder()->feature_dim(), 256);
  const auto resolved = config.file->resolved_yaml();
  EXPECT_NE(resolved.find("temperature: 0.1"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("batch_size: 256"), std::string::npos) << resolved;
  EXPECT_NE(resolved.find("backbone: resnet34"), std::string::npos) << resolved;
}

TEST(RunConfig, ErrorsNameFileLineAndKey) {
  const std::string base = "data:\n  root: images/\n";
  EXPECT_EQ(error_of(base + "method:\n  name: simclr\n  temprature: 0.1\n"),
            "run.yaml:5: method.temprature: unknown key (known: temperature, projection_dim, "
            "projection_hidden_dim, projection_layers, name)");
  EXPECT_EQ(error_of(base + "train:\n  lr: fast\n"),
            "run.yaml:4: train.lr: expected a number, got 'fast'");
  EXPECT_EQ(error_of(base + "train:\n  lr: -1\n"), "run.yaml:4: train.lr: must be > 0");
  EXPECT_EQ(error_of(base + "train:\n  epochs: 2.5\n"),
            "run.yaml:4: train.epochs: expected an integer, got '2.5'");
  EXPECT_EQ(error_of(base + "train:\n  optimizer: lamb\n"),
            "run.yaml:4: train.optimizer: must be one of: sgd, adam, adamw, lars");
  EXPECT_EQ(error_of(base + "augment:\n  mean: []\n"),
            "run.yaml:4: augment.mean: must not be empty");
  EXPECT_EQ(error_of(base + "trian:\n  lr: 1\n"),
            "run.yaml:3: trian: unknown section (known: run, data, augment, model, method, train, "
            "eval, probe, finetune)");
  EXPECT_EQ(error_of(base + "method:\n  name: simclrr\n"),
            "run.yaml:4: method.name: unknown name 'simclrr' (known: simclr, mae, dino, moco, "
            "byol, simsiam, barlow_twins, vicreg, autoencoder, rotation, jigsaw, simmim, ibot, "
            "vqvae, beit, satmae)");
  EXPECT_EQ(error_of(base + "method:\n  name: mae\n"),
            "run.yaml:4: method.name: mae needs the vit backbone, not resnet18");
  EXPECT_EQ(error_of(base + "augment:\n  rotate90_p: 0.5\nmethod:\n  name: rotation\n"),
            "run.yaml:4: augment.rotate90_p: 0.500000 turns some views at random, so the turn "
            "rotation names would not be the one the view shows; set it to 0");
  EXPECT_EQ(error_of(base + "augment:\n  vflip_p: 0.5\nmethod:\n  name: rotation\n"),
            "run.yaml:4: augment.vflip_p: 0.500000 turns some views upside down (mirrored), so "
            "the turn rotation names would not be the one the view shows; set it to 0");
  EXPECT_EQ(error_of(base + "method:\n  name: jigsaw\n  grid: 2\n"),
            "run.yaml: method.permutations: 100 orders of 4 tiles, which have only 24");
  EXPECT_EQ(error_of(base + "model:\n  backbone: vit\n  image_size: 30\n  patch_size: 4\n"),
            "run.yaml:5: model.image_size: 30 is not a multiple of patch_size 4");
  EXPECT_EQ(error_of(base + "model:\n  backbone: vit\n  image_size: 64\n  patch_size: 4\n"),
            "run.yaml: augment.size: 32, but the encoder takes 64x64 images (model.image_size)");
  EXPECT_EQ(error_of(base + "train: 5\n"),
            "run.yaml:3: train: expected a mapping of keys, got '5'");
  EXPECT_EQ(error_of("run:\n  seed: 1\n"),
            "run.yaml: data.root: required: a folder of images or a CSV manifest");
  EXPECT_EQ(error_of(base + "augment:\n  crop_scale_min: 0.9\n  crop_scale_max: 0.5\n"),
            "run.yaml:4: augment.crop_scale_min: must not exceed augment.crop_scale_max");
  // yaml-cpp keeps the first of two equal keys; a second one must not be ignored silently.
  EXPECT_EQ(error_of(base + "data:\n  bands: [1, 2]\n"),
            "run.yaml:3: data: duplicate section (first at line 1)");
  EXPECT_EQ(error_of(base + "train:\n  lr: 1\n  lr: 2\n"),
            "run.yaml:5: train.lr: duplicate key (first at line 4)");
}

TEST(RunConfig, BandsAndNormalisationMustAgree) {
  EXPECT_EQ(error_of("data:\n  root: x\n  bands: [1, 2]\naugment:\n  mean: [1, 2, 3]\n"),
            "run.yaml:5: augment.mean: has 3 values; the data has 2 bands (give one value, or one "
            "per band)");
}

TEST(RunConfig, OverridesApplyAndAreNamedInErrors) {
  const auto config = parse_run_config(kValid, "run.yaml", {"train.lr=0.5", "data.bands=[1]"});
  EXPECT_DOUBLE_EQ(config.train.lr(), 0.5);
  EXPECT_EQ(config.data.bands(), (std::vector<int64_t>{1}));
  EXPECT_EQ(error_of(kValid, {"train.lrr=1"}).substr(0, 30), "--set train.lrr: unknown key (");
  EXPECT_EQ(error_of(kValid, {"train.lr=0"}), "--set train.lr: must be > 0");
  EXPECT_EQ(error_of(kValid, {"lr=0"}), "--set lr: expected section.key, such as train.lr");
  EXPECT_EQ(error_of(kValid, {"train.lr"}), "--set train.lr: expected key.path=value");
}

TEST(RunConfig, FileProblems) {
  EXPECT_EQ(error_of("run:\n  seed: [1,\n"),
            "run.yaml:3: not valid YAML (end of sequence flow not found)");
  testing::TempDir dir;
  try {
    load_run_config(dir / "none.yaml", {});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), dir / "none.yaml: cannot open config file");
  }
}

TEST(RunConfig, EveryShippedConfigIsValid) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(PRETEXT_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    EXPECT_NO_THROW(load_run_config(entry.path().string(), {})) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 1);
}

TEST(Config, EveryShippedConfigBuildsItsModel) {
  // What only building shows (band groups against the bands, decoder shapes): with the bands the
  // config reads, three for slides, a slab's slices otherwise.
  for (const auto& entry : std::filesystem::directory_iterator(PRETEXT_SOURCE_DIR "/configs")) {
    const auto config = load_run_config(entry.path().string(), {});
    const auto& data = config.data;
    const auto channels = !data.scenes().band_names().empty()
                              ? static_cast<int64_t>(data.scenes().band_names().size())
                          : !data.bands().empty() ? static_cast<int64_t>(data.bands().size())
                          : data.kind() == DataKind::kSlides ? 3
                                                             : data.slices().slab();
    EXPECT_NO_THROW(config.build_method(channels)) << entry.path();
  }
}

TEST(Config, EveryShippedConfigIsValid) {
  int64_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(PRETEXT_SOURCE_DIR "/configs")) {
    EXPECT_NO_THROW(load_run_config(entry.path().string(), {})) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 3);
}

TEST(Config, WindowsAndSlabsAreChecked) {
  EXPECT_NE(error_of("data:\n  root: x\naugment:\n  window: presets\n  window_levels: [40, 50]\n"
                     "  window_widths: [400]\n")
                .find("run.yaml:6: augment.window_widths: 1 widths for 2 levels"),
            std::string::npos);
  EXPECT_NE(error_of("data:\n  root: x\n  slab: 2\n").find("run.yaml:3: data.slab: 2 (must be odd"),
            std::string::npos);
  EXPECT_NE(error_of("data:\n  on_bad_file: ignore\n").find("data.on_bad_file"), std::string::npos);
  EXPECT_NE(error_of("augment:\n  window: auto\n").find("augment.window"), std::string::npos);
}

TEST(Config, EnumFieldsAreReadWrittenAndCheckedByName) {
  const auto config = parse_run_config(
      "data:\n  root: x\n  kind: rasters\n  on_bad_file: skip\n  window_placement: random\n"
      "augment:\n  window: percentile\ntrain:\n  optimizer: adamw\nprobe:\n  optimizer: sgd\n",
      "run.yaml");
  EXPECT_EQ(config.data.kind(), DataKind::kRasters);
  EXPECT_EQ(config.data.on_bad_file(), io::OnBadFile::kSkip);
  EXPECT_EQ(config.data.scenes().placement(), domains::WindowPlacement::kRandom);
  EXPECT_EQ(config.augment.window(), domains::WindowMode::kPercentile);
  EXPECT_EQ(config.train.optimizer(), OptimizerKind::kAdamw);
  EXPECT_EQ(config.probe.optimizer(), OptimizerKind::kSgd);
  // The options of each kind of data get the shared fields.
  EXPECT_EQ(config.data.scene_options(true).on_bad_file(), io::OnBadFile::kSkip);
  EXPECT_EQ(config.data.slice_options(true).on_bad_file(), io::OnBadFile::kSkip);
  EXPECT_TRUE(config.data.slice_options(true).replace_undecodable());
  EXPECT_FALSE(config.data.slice_options(false).replace_undecodable());
  // The resolved config names every value as the YAML does.
  const auto yaml = config.file->resolved_yaml();
  for (const char* line : {"kind: rasters", "on_bad_file: skip", "window_placement: random",
                           "window: percentile", "optimizer: adamw", "optimizer: sgd"})
    EXPECT_NE(yaml.find(line), std::string::npos) << line << "\n" << yaml;
  // Unknown names list the known ones; a field may allow fewer than its enum has.
  EXPECT_NE(error_of("data:\n  root: x\n  kind: volumes\n")
                .find("run.yaml:3: data.kind: must be one of: images, slides, rasters"),
            std::string::npos);
  EXPECT_NE(error_of("data:\n  root: x\nprobe:\n  optimizer: adamw\n")
                .find("probe.optimizer: must be one of: adam, sgd"),
            std::string::npos);
  EXPECT_NE(error_of("data:\n  root: x\n  date_pattern: '(unclosed'\n")
                .find("run.yaml:3: data.date_pattern: '(unclosed' is not a regular expression"),
            std::string::npos);
}

}  // namespace
}  // namespace pretext::pipelines
