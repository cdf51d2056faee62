#pragma once

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "pipelines/demo.h"
#include "pipelines/run_config.h"
#include "pipelines/run_dir.h"
#include "pipelines/run_log.h"
#include "pipelines/training_metrics.h"
#include "tests/io/test_data.h"

namespace pretext::pipelines {

// 4 classes x 16 demo tiles (12 train + 4 test), made once for the whole suite.
class TinyRunTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_ = new testing::TempDir();
    generate_demo_tiles(data_->path(), 16, 0);
  }
  static void TearDownTestSuite() { delete data_; }

  // `model` / `method`: the config's sections (a small ResNet and SimCLR unless given).
  RunConfig config(const std::string& run_dir, const std::vector<std::string>& extra = {},
                   const std::string& model = kResNet,
                   const std::string& method = "  name: simclr\n  projection_dim: 16\n") const {
    std::vector<std::string> overrides = {"run.dir=" + run_dir, "data.root=" + data_->path(),
                                          "data.split=train"};
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    return parse_run_config(R"(run:
  seed: 5
  threads: 2
data:
  image_size: 16
model:
)" + model + "method:\n" + method +
                                R"(augment:
  size: 16
train:
  batch_size: 16
  epochs: 4
  optimizer: sgd
  lr: 0.1
  warmup_steps: 2
  checkpoint_every: 0
  log_every: 1
eval:
  k: [1, 5]
)",
                            "trainer_test.yaml", overrides);
  }

  static std::vector<double> losses(const std::string& run_dir) {
    std::vector<double> out;
    for (const auto& row : read_training_rows(RunDir(run_dir).metrics())) out.push_back(row.loss);
    return out;
  }

  static constexpr const char* kResNet =
      "  backbone: resnet18\n  width_multiplier: 0.125\n  small_stem: true\n";
  static constexpr const char* kViT =
      "  backbone: vit\n  image_size: 16\n  patch_size: 4\n  dim: 16\n  depth: 2\n  heads: 2\n";
  inline static testing::TempDir* data_ = nullptr;
  testing::TempDir runs_;
  RunLog log_;
};

}  // namespace pretext::pipelines
