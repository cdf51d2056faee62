// Radiology end to end through the command line: DICOM series carrying recognisable identifiers
// pretrained with MAE, evaluated, exported and reported; then every byte the runs wrote and
// printed is searched for those identifiers.

#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "pipelines/training_metrics.h"
#include "tests/io/dicom_data.h"
#include "tests/io/test_data.h"
#include "tests/pipelines/run_cli.h"

namespace pretext::pipelines {
namespace {
namespace fs = std::filesystem;
using testing::DicomSpec;
using testing::TempDir;

// Two classes of tiny axial CT series: "bright" (a 200 HU disc) and "dark" (a -200 HU disc) in
// -1000 HU air; three series per class for training and one for testing, 6 slices each.
void write_dataset(const std::string& root) {
  int series = 0;
  for (const char* split : {"train", "test"}) {
    for (const char* label : {"bright", "dark"}) {
      const int count = std::string(split) == "train" ? 3 : 1;
      for (int s = 0; s < count; ++s, ++series) {
        const std::string folder =
            root + "/" + split + "/" + label + "/case" + std::to_string(series);
        fs::create_directories(folder);
        const auto yy = torch::arange(16, torch::kFloat32).view({16, 1});
        const auto xx = torch::arange(16, torch::kFloat32).view({1, 16});
        for (int64_t z = 0; z < 6; ++z) {
          const float radius = 3.0f + static_cast<float>((series + z) % 4);
          const auto inside = ((yy - 8).pow(2) + (xx - 8).pow(2)) < radius * radius;
          const float value = std::string(label) == "bright" ? 200.f : -200.f;
          DicomSpec spec;
          spec.stored =
              (torch::where(inside, torch::full({16, 16}, value), torch::full({16, 16}, -1000.f)) +
               1024)
                  .to(torch::kInt64);
          spec.z = 2.5 * static_cast<double>(z);
          spec.series = std::to_string(series);
          spec.patient_id = std::string(testing::kPatientId) + std::to_string(series);
          spec.transfer_syntax = z % 2 ? "1.2.840.10008.1.2.4.70" : "1.2.840.10008.1.2.1";
          write_dicom(folder + "/IM" + std::to_string(z) + ".dcm", spec);
        }
      }
    }
  }
  // Objects a PACS export carries besides images.
  DicomSpec report;
  report.structured_report = true;
  report.stored = torch::zeros({1, 1}, torch::kInt64);
  write_dicom(root + "/train/bright/case0/SR1.dcm", report);
}

std::string config_text(const std::string& root, const std::string& run) {
  return "run:\n  dir: " + run + "\n  seed: 3\n  threads: 2\n" + "data:\n  root: " + root +
         "\n  split: train\n  image_size: 16\n  slab: 3\n" +
         "  min_body_fraction: 0.05\n  on_bad_file: skip\n" +
         R"(augment:
  size: 16
  window: presets
  window_levels: [40, -600]
  window_widths: [400, 1500]
  crop_scale_min: 0.6
  mean: [0.5]
  std: [0.25]
model:
  backbone: vit
  image_size: 16
  patch_size: 4
  dim: 32
  depth: 2
  heads: 2
method:
  name: mae
  decoder_dim: 16
  decoder_depth: 1
  decoder_heads: 2
train:
  batch_size: 12
  epochs: 20
  lr: 0.002
  warmup_steps: 2
  log_every: 1
eval:
  k: [1, 3]
)";
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::vector<double> losses(const std::string& metrics_csv) {
  std::vector<double> out;
  for (const auto& row : read_training_rows(metrics_csv)) out.push_back(row.loss);
  return out;
}

// Without train / test folders, hold-outs take whole patients: the slices of one patient, over
// all its series, are never on both sides of k-NN, the probe or fine-tuning.
TEST(Radiology, HoldOutsTakeWholePatients) {
  TempDir dir;
  const std::string root = dir / "export";
  int series = 0;
  for (const char* label : {"bright", "dark"})
    for (int patient = 0; patient < 3; ++patient)
      for (int s = 0; s < 2; ++s, ++series)
        for (int z = 0; z < 3; ++z) {
          DicomSpec spec;
          spec.stored =
              torch::full({16, 16}, std::string(label) == "bright" ? 1224 : 824, torch::kInt64) +
              torch::randint(0, 50, {16, 16}, torch::kInt64);
          spec.z = 2.5 * z;
          spec.series = std::to_string(series);
          spec.patient_id = std::string(testing::kPatientId) + label + std::to_string(patient);
          const std::string folder =
              root + "/" + label + "/p" + std::to_string(patient) + "/s" + std::to_string(s);
          fs::create_directories(folder);
          write_dicom(folder + "/IM" + std::to_string(z) + ".dcm", spec);
        }
  testing::write_text(dir / "run.yaml", config_text(root, dir / "run"));
  const std::string options = " --config " + (dir / "run.yaml") + " --random-init";
  run_every_evaluation(options);
  const auto read = [&](const char* file) {
    return nlohmann::json::parse(read_bytes(dir / ("run/" + std::string(file))));
  };
  // 20% of each class's 3 patients (at least one) in test: 2 patients, 12 slices; with per-slice
  // draws it would be 4 slices of each class from any patient.
  for (const char* file : {"knn.json", "probe.json", "finetune.json"}) {
    const auto json = read(file);
    EXPECT_EQ(json["examples"]["test"], 12) << file;
    EXPECT_EQ(json["groups"]["test"], 2) << file;
  }
  EXPECT_EQ(read("knn.json")["groups"]["train"], 4);
  // Fine-tuning validates on one more patient per class, from the training patients.
  const auto finetune = read("finetune.json");
  EXPECT_EQ(finetune["groups"]["train"], 2);
  EXPECT_EQ(finetune["groups"]["val"], 2);
  EXPECT_EQ(finetune["examples"]["val"], 12);
  const auto log = read_bytes(dir / "run/run.log");
  EXPECT_NE(log.find("evaluation split (groups by auto): train 24 examples in 4 groups, test 12 "
                     "examples in 2 groups"),
            std::string::npos)
      << log;
  // By slice (eval.group_by: file; one file per slice), the old per-example draw.
  run_pretext("knn" + options + " --set eval.group_by=file");
  EXPECT_EQ(read("knn.json")["groups"]["test"], read("knn.json")["examples"]["test"]);
}

TEST(Radiology, MaeOnDicomSeriesLeaksNoIdentifier) {
  TempDir dir;
  write_dataset(dir / "export");
  // A corrupt file in the export: skipped and counted under on_bad_file: skip.
  fs::copy_file(dir / "export/train/dark/case3/IM2.dcm", dir / "export/train/dark/broken.dcm");
  testing::truncate_file(dir / "export/train/dark/broken.dcm", 0.4);
  testing::write_text(dir / "run.yaml", config_text(dir / "export", dir / "run"));

  std::string printed;
  printed += run_pretext("pretrain --config " + (dir / "run.yaml"));
  const auto log = read_bytes(dir / "run/run.log");
  EXPECT_NE(log.find("broken.dcm: DICOM: truncated"), std::string::npos) << log;
  EXPECT_NE(log.find("6 DICOM series"), std::string::npos) << log;
  EXPECT_NE(log.find("skipped 1 non-image object"), std::string::npos) << log;
  const auto loss = losses(dir / "run/metrics.csv");
  ASSERT_GE(loss.size(), 20u);
  const auto mean = [](auto first, auto last) { return std::accumulate(first, last, 0.0) / 5; };
  EXPECT_LT(mean(loss.end() - 5, loss.end()), mean(loss.begin(), loss.begin() + 5));

  printed += run_pretext("knn --config " + (dir / "run.yaml"));
  printed += run_pretext("export --config " + (dir / "run.yaml"));
  printed += run_pretext("report --config " + (dir / "run.yaml"));
  printed += run_pretext("inspect --stats " + (dir / "export"));
  printed += run_pretext("inspect " + (dir / "export/train/bright/case0/IM0.dcm"));
  EXPECT_NE(printed.find("-1000"), std::string::npos) << printed;  // HU minimum in --stats
  EXPECT_NE(printed.find("JPEG Lossless"), std::string::npos) << printed;

  const auto json = read_bytes(dir / "run/encoder.json");
  EXPECT_NE(json.find("\"presets\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"level\": 40"), std::string::npos) << json;

  // Under on_bad_file: fail the same run stops, naming the file.
  const auto failed =
      run_pretext("pretrain --config " + (dir / "run.yaml") +
                      " --set data.on_bad_file=fail --set run.dir=" + (dir / "run_fail"),
                  2);
  EXPECT_NE(failed.find("broken.dcm: DICOM: truncated"), std::string::npos) << failed;
  printed += failed;

  std::vector<std::pair<std::string, std::string>> outputs = {{"printed output", printed}};
  for (const auto& entry : fs::recursive_directory_iterator(dir.path()))
    if (entry.is_regular_file() && entry.path().string().find("/export/") == std::string::npos)
      outputs.emplace_back(entry.path().string(), read_bytes(entry.path()));
  ASSERT_GT(outputs.size(), 8u);  // run.log, metrics, checkpoint, features, export, report, ...
  const std::string uid_root = testing::kUidRoot;
  for (const auto& [name, bytes] : outputs)
    for (const std::string& secret :
         {std::string(testing::kPatientName), std::string("Quixotewright"),
          std::string(testing::kPatientId), std::string(testing::kBirthDate),
          std::string(testing::kAccession), std::string(testing::kInstitution),
          std::string("Drumblewick"), uid_root.substr(0, uid_root.size() - 1)})
      EXPECT_EQ(bytes.find(secret), std::string::npos) << name << " contains " << secret;
}

TEST(Radiology, AnUnsplitPacsExportWithTiffPreamblesAndPaddingPretrains) {
  TempDir dir;
  // A PACS export as it comes: no split folders; a series whose preambles hold a TIFF header
  // (dual-personality files); the corners outside the reconstruction circle stored as padding
  // (-2000, which the intercept would make -3024 HU).
  fs::create_directories(dir / "pacs/study1");
  const auto yy = torch::arange(16, torch::kFloat32).view({16, 1});
  const auto xx = torch::arange(16, torch::kFloat32).view({1, 16});
  const auto radius = ((yy - 7.5).pow(2) + (xx - 7.5).pow(2)).sqrt();
  const auto hu =
      torch::where(radius < 4, torch::full({16, 16}, 40.f), torch::full({16, 16}, -1000.f));
  const auto stored = torch::where(radius > 8, torch::full({16, 16}, -2000.f), hu + 1024);
  const int64_t padded_per_slice = (radius > 8).sum().item<int64_t>();
  for (int64_t z = 0; z < 6; ++z) {
    DicomSpec spec;
    spec.stored = stored.to(torch::kInt64);
    spec.is_signed = true;
    spec.bits_stored = 16;
    spec.padding_value = -2000;
    spec.z = 2.5 * static_cast<double>(z);
    spec.preamble = std::string("II*\0\x08\0\0\0\0\0", 10);
    write_dicom(dir / ("pacs/study1/IM" + std::to_string(z)), spec);
  }
  testing::write_text(dir / "run.yaml", config_text(dir / "pacs", dir / "run"));
  const std::string overrides = " --set train.batch_size=4 --set train.epochs=1";
  run_pretext("pretrain --config " + (dir / "run.yaml") + overrides);
  const auto log = read_bytes(dir / "run/run.log");
  EXPECT_NE(log.find("no train / val / test splits; all 6 images are used for split 'train'"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("1 DICOM series"), std::string::npos) << log;

  const auto stats = run_pretext("inspect --stats " + (dir / "pacs"));
  EXPECT_NE(stats.find("values        min -1000  mean "), std::string::npos) << stats;
  EXPECT_NE(stats.find("max 40 HU"), std::string::npos) << stats;
  EXPECT_NE(stats.find("padded        " + std::to_string(6 * padded_per_slice) + " pixels"),
            std::string::npos)
      << stats;

  // An empty split means no split filter; a split the data does not have is a clear error.
  run_pretext("pretrain --config " + (dir / "run.yaml") + overrides +
              " --set data.split= --set run.dir=" + (dir / "run_all"));
  const auto refused = run_pretext("pretrain --config " + (dir / "run.yaml") + overrides +
                                       " --set data.split=val --set run.dir=" + (dir / "run_val"),
                                   2);
  EXPECT_NE(refused.find("no images in split 'val' (the data has no train / val / test"),
            std::string::npos)
      << refused;
}

TEST(Radiology, AFolderWithoutDicomOrImagesIsAClearError) {
  TempDir dir;
  fs::create_directories(dir / "empty");
  testing::write_text(dir / "empty/readme.txt", "no images here");
  testing::write_text(dir / "run.yaml", config_text(dir / "empty", dir / "run"));
  const auto output = run_pretext("pretrain --config " + (dir / "run.yaml"), 2);
  EXPECT_NE(output.find(dir / "empty" + ": no image files found"), std::string::npos) << output;
}

}  // namespace
}  // namespace pretext::pipelines
