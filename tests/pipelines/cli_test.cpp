// The `pretext` binary as a user runs it: exit status 2 and one clear message for bad input.
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/version.h>

#include "pipelines/demo.h"
#include "tests/io/test_data.h"

namespace pretext::pipelines {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

struct Outcome {
  int status;
  std::string output;
};

Outcome pretext(const std::string& arguments) {
  Outcome outcome;
  outcome.status =
      testing::run_command(std::string(PRETEXT_BINARY) + " " + arguments, &outcome.output);
  return outcome;
}

void expect_bad_input(const Outcome& outcome, const std::vector<std::string>& parts) {
  EXPECT_EQ(outcome.status, 2) << outcome.output;
  for (const auto& part : parts)
    EXPECT_NE(outcome.output.find(part), std::string::npos)
        << "'" << part << "' not in: " << outcome.output;
  EXPECT_EQ(outcome.output.find("internal error"), std::string::npos) << outcome.output;
  EXPECT_EQ(outcome.output.find("terminate"), std::string::npos) << outcome.output;
}

// dir/run.yaml: a tiny SimCLR run on the tiles in dir/tiles, written to dir/run, with extra
// lines for the data and train sections.
void write_tiny_run(const TempDir& dir, const std::string& data, const std::string& train) {
  testing::write_text(dir / "run.yaml",
                      "run:\n  dir: " + (dir / "run") + "\n  threads: 2\n" +
                          "data:\n  root: " + (dir / "tiles") + "\n  image_size: 16\n" + data +
                          "model:\n  width_multiplier: 0.125\n  small_stem: true\n"
                          "augment:\n  size: 16\n"
                          "train:\n  batch_size: 12\n" +
                          train + "eval:\n  k: [3]\n");
}

TEST(Cli, VersionAndHelp) {
  const auto version = pretext("--version");
  EXPECT_EQ(version.status, 0);
  // The LibTorch it runs on, which a bug report needs: here Debian's CPU build.
  EXPECT_EQ(version.output, "pretext 0.1.0 (LibTorch " TORCH_VERSION ", CPU only)\n");
  const auto help = pretext("demo --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("To run the same on your own images"), std::string::npos);
  expect_bad_input(pretext("pretrain"), {"--config is required"});
}

TEST(Cli, WarnsAboutTheReferenceBlas) {
  // libblas3 (netlib's reference BLAS) comes with libtorch-dev; preloading it stands for a
  // machine without OpenBLAS.
  const std::string netlib = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
  ASSERT_TRUE(fs::exists(netlib));
  TempDir dir;
  generate_demo_tiles(dir / "tiles", 5, 0);
  testing::write_text(dir / "run.yaml", "run:\n  dir: " + (dir / "run") + "\ndata:\n  root: " +
                                            (dir / "tiles") + "\neval:\n  k: [1]\n");
  Outcome slow;
  // verify_asan_link_order=0: a sanitizer build accepts the preload too.
  slow.status =
      testing::run_command("ASAN_OPTIONS=verify_asan_link_order=0 LD_PRELOAD=" + netlib + " " +
                               PRETEXT_BINARY + " knn --random-init --config " + (dir / "run.yaml"),
                           &slow.output);
  EXPECT_EQ(slow.status, 0) << slow.output;
  EXPECT_NE(slow.output.find("warning: matrix multiplies run at"), std::string::npos)
      << slow.output;
  const auto fast = pretext("knn --random-init --config " + (dir / "run.yaml"));
  EXPECT_EQ(fast.status, 0) << fast.output;
  EXPECT_EQ(fast.output.find("warning: matrix multiplies"), std::string::npos) << fast.output;
}

TEST(Cli, InspectShowsWhatTheReaderSees) {
  TempDir dir;
  auto pixels = torch::zeros({2, 4, 5});
  pixels[0].fill_(10);
  pixels[0][1][2] = 250;
  pixels[1].fill_(3);
  testing::write_raster(dir / "two.tif", pixels, "GTiff");
  const auto plain = pretext("inspect " + (dir / "two.tif"));
  EXPECT_EQ(plain.status, 0) << plain.output;
  EXPECT_NE(plain.output.find("format   GTiff"), std::string::npos) << plain.output;
  EXPECT_NE(plain.output.find("size     5 x 4 pixels"), std::string::npos) << plain.output;
  EXPECT_NE(plain.output.find("bands    2"), std::string::npos) << plain.output;
  EXPECT_NE(plain.output.find("1  uint8"), std::string::npos) << plain.output;
  const auto stats = pretext("inspect --stats " + (dir / "two.tif"));
  EXPECT_EQ(stats.status, 0) << stats.output;
  // Band 1: nineteen 10s and one 250 -> mean 22.
  EXPECT_NE(stats.output.find("  1      10           22           250"), std::string::npos)
      << stats.output;
  EXPECT_NE(stats.output.find("  2      3            3            3"), std::string::npos)
      << stats.output;
}

TEST(Cli, BadInputGetsOneClearMessageAndStatus2) {
  TempDir dir;
  expect_bad_input(pretext("inspect " + (dir / "missing.tif")), {dir / "missing.tif"});
  testing::write_text(dir / "notes.tif", "plain text");
  expect_bad_input(pretext("inspect " + (dir / "notes.tif")),
                   {dir / "notes.tif", "not an image format"});
  testing::write_raster(dir / "cut.tif", torch::rand({3, 128, 128}) * 255, "GTiff");
  testing::truncate_file(dir / "cut.tif", 0.5);
  expect_bad_input(pretext("inspect --stats " + (dir / "cut.tif")), {dir / "cut.tif", "GDAL"});

  const auto config = [&](const std::string& root, const std::string& extra = "") {
    testing::write_text(dir / "run.yaml", "run:\n  dir: " + (dir / "run") +
                                              "\ndata:\n  root: " + root + "\n" + extra);
    return "pretrain --config " + (dir / "run.yaml");
  };
  fs::create_directories(dir / "empty");
  expect_bad_input(pretext(config(dir / "empty")), {dir / "empty", "no image files"});
  testing::write_raster(dir / "a.png", torch::zeros({1, 8, 8}), "PNG");
  testing::write_text(dir / "list.csv", "a.png,cat\na.png,cat,train,oops\n");
  expect_bad_input(pretext(config(dir / "list.csv")), {dir / "list.csv:2:"});
  expect_bad_input(pretext(config(dir / "a.png", "train:\n  lr: 0.1\n  epoch: 3\n")),
                   {dir / "run.yaml:7: train.epoch: unknown key"});
  expect_bad_input(pretext(config(dir / "a.png") + " --set train.lr=-1"),
                   {"--set train.lr: must be > 0"});
  expect_bad_input(pretext("knn --config " + (dir / "run.yaml")),
                   {dir / "run/checkpoint.pt", "no checkpoint"});
}

TEST(Cli, PretrainResumeAndKnnEndToEnd) {
  TempDir dir;
  generate_demo_tiles(dir / "tiles", 12, 1);
  write_tiny_run(dir, "  split: train\n", "  epochs: 2\n");
  const auto trained = pretext("pretrain --config " + (dir / "run.yaml"));
  ASSERT_EQ(trained.status, 0) << trained.output;
  EXPECT_NE(trained.output.find("finished at step 6"), std::string::npos) << trained.output;
  for (const char* file : {"config.yaml", "run.log", "metrics.csv", "checkpoint.pt"})
    EXPECT_TRUE(fs::exists(dir / ("run/" + std::string(file)))) << file;
  // The log names what computed: the LibTorch, the device and the precision.
  const std::string log = testing::read_text(dir / "run/run.log");
  EXPECT_NE(log.find("LibTorch " TORCH_VERSION ", CPU only"), std::string::npos) << log;
  EXPECT_NE(log.find("device cpu, precision fp32"), std::string::npos) << log;
  const auto more = pretext("pretrain --config " + (dir / "run.yaml") + " --resume");
  EXPECT_EQ(more.status, 0) << more.output;
  EXPECT_NE(more.output.find("resuming from"), std::string::npos) << more.output;
  const auto knn = pretext("knn --config " + (dir / "run.yaml"));
  ASSERT_EQ(knn.status, 0) << knn.output;
  EXPECT_NE(knn.output.find("k      top-1"), std::string::npos) << knn.output;
}

TEST(Cli, CtrlCStopsWithACheckpointThatResumes) {
  TempDir dir;
  generate_demo_tiles(dir / "tiles", 12, 2);
  write_tiny_run(dir, "  workers: 1\n", "  epochs: 400\n  log_every: 1\n  checkpoint_every: 0\n");
  // Start training, wait until metrics.csv has `rows` lines (by then the SIGINT handler is
  // installed; before it, bash's background jobs ignore SIGINT), then send SIGINT.
  const auto interrupt = [&](const std::string& extra, int rows) {
    const std::string script =
        std::string(PRETEXT_BINARY) + " pretrain --config " + (dir / "run.yaml") + extra +
        " & pid=$!; for i in $(seq 600); do [ $(wc -l < " + (dir / "run/metrics.csv") +
        " 2>/dev/null || echo 0) -ge " + std::to_string(rows) +
        " ] && break; sleep 0.1; done; kill -INT $pid; wait $pid; echo status=$?";
    std::string output;
    testing::run_command("bash -c '" + script + "'", &output);
    return output;
  };
  const auto first = interrupt("", 3);
  EXPECT_NE(first.find("status=130"), std::string::npos) << first;
  EXPECT_NE(first.find("interrupted; continue with --resume"), std::string::npos) << first;
  ASSERT_TRUE(fs::exists(dir / "run/checkpoint.pt")) << first;
  // The resumed run first rewrites the rows up to its checkpoint; wait for two beyond them.
  std::string count;
  testing::run_command("wc -l < " + (dir / "run/metrics.csv"), &count);
  const auto second = interrupt(" --resume", std::stoi(count) + 2);
  EXPECT_NE(second.find("status=130"), std::string::npos) << second;
  const auto at = second.find("resuming from " + (dir / "run/checkpoint.pt") + " at step ");
  ASSERT_NE(at, std::string::npos) << second;
  EXPECT_NE(second[at + ("resuming from " + (dir / "run/checkpoint.pt") + " at step ").size()], '0')
      << second;
}

}  // namespace
}  // namespace pretext::pipelines
