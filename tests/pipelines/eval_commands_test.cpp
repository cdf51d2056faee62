// extract / knn / probe / finetune / export as the CLI runs them, on the tiny demo tiles.
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "pipelines/commands.h"
#include "pipelines/export.h"
#include "pipelines/report.h"
#include "tests/pipelines/tiny_run.h"

namespace pretext::pipelines {
namespace {

namespace fs = std::filesystem;
using EvalCommandsTest = TinyRunTest;

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

int64_t lines_of(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) ++n;
  return n;
}

TEST_F(EvalCommandsTest, KnnOnExtractedFeaturesEqualsKnnOnTheEncoder) {
  const auto cfg = config(runs_ / "x", {"train.max_steps=3"});
  pretrain(cfg, false, "", log_);
  const auto path = extract(cfg, EncoderSource{}, "", log_);
  EXPECT_EQ(path, runs_ / "x/features.pt");
  const auto set = load_features(path);
  EXPECT_EQ(set.size(), 64);  // every image, all splits
  EXPECT_EQ(set.class_names.size(), 4u);
  const auto direct = knn(cfg, EncoderSource{}, "", log_);
  const auto cached = knn(cfg, EncoderSource{}, path, log_);
  ASSERT_EQ(direct.size(), cached.size());
  for (size_t i = 0; i < direct.size(); ++i) {
    EXPECT_EQ(direct[i].metrics.top1, cached[i].metrics.top1);
    EXPECT_EQ(direct[i].metrics.confusion, cached[i].metrics.confusion);
  }
  const auto json = read_json(runs_ / "x/knn.json");
  EXPECT_EQ(json["examples"]["test"], 16);
  EXPECT_EQ(json["results"][0]["confusion"].size(), 4u);
}

TEST_F(EvalCommandsTest, ProbeSweepWritesEveryHeadAndThePlot) {
  const auto cfg =
      config(runs_ / "p", {"probe.lr=[0.001, 0.01, 0.1]", "probe.weight_decay=[0, 0.01]",
                           "probe.epochs=5", "probe.batch_size=16"});
  const auto result = probe(cfg, EncoderSource{{}, {}, true}, "", log_);
  ASSERT_EQ(result.heads.size(), 6u);
  for (const auto& head : result.heads)
    EXPECT_LE(head.val_score, result.heads[result.chosen].val_score);
  EXPECT_EQ(lines_of(runs_ / "p/probe.csv"), 7);
  std::ifstream svg(runs_ / "p/probe.svg");
  const std::string text((std::istreambuf_iterator<char>(svg)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.rfind("<svg", 0), 0u);
  EXPECT_NE(text.find("weight decay 0.01"), std::string::npos);
  const auto json = read_json(runs_ / "p/probe.json");
  EXPECT_EQ(json["lr"], result.heads[result.chosen].lr);
  EXPECT_EQ(json["examples"]["val"], 4);  // 10% of the 12 training tiles of each of 4 classes
}

TEST_F(EvalCommandsTest, FinetuneIsReproducibleAndKeepsTheBestWeights) {
  const std::vector<std::string> settings = {"finetune.per_class=3", "finetune.seeds=[0, 1]",
                                             "finetune.epochs=3", "finetune.batch_size=6"};
  const auto a = finetune(config(runs_ / "f", settings), EncoderSource{{}, {}, true}, log_);
  ASSERT_EQ(a.size(), 2u);
  for (const auto& seed : a) {
    EXPECT_EQ(seed.labelled, 12);
    EXPECT_GE(seed.best_epoch, 1);
    EXPECT_LE(seed.best_epoch, seed.epochs_run);
    EXPECT_EQ(seed.test.count, 16);
    EXPECT_TRUE(fs::exists(runs_ / ("f/finetune_seed" + std::to_string(seed.seed) + ".pt")));
  }
  const auto b = finetune(config(runs_ / "g", settings), EncoderSource{{}, {}, true}, log_);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].test.confusion, b[i].test.confusion);
    EXPECT_EQ(a[i].best_epoch, b[i].best_epoch);
  }
  const auto json = read_json(runs_ / "f/finetune.json");
  EXPECT_EQ(json["seeds"].size(), 2u);
  EXPECT_NEAR(json["mean"]["top1"].get<double>(), (a[0].test.top1 + a[1].test.top1) / 2, 1e-12);
}

TEST_F(EvalCommandsTest, AFrozenEncoderIsNotChanged) {
  const auto cfg = config(runs_ / "z");
  auto dataset = std::make_shared<io::ImageDataset>(io::Catalog::from_path(data_->path()),
                                                    cfg.data.image_options());
  auto encoder = cfg.build_method(3)->encoder();
  std::vector<torch::Tensor> before;
  for (const auto& t : encoder->parameters()) before.push_back(t.clone());
  for (const auto& t : encoder->buffers()) before.push_back(t.clone());
  FinetuneContext context;
  context.dataset = dataset;
  context.make_encoder = [&] { return encoder; };
  context.augment = cfg.augment;
  const auto examples = labels_of(*dataset);
  const auto split = eval_split(examples, cfg.eval, 0, false);
  const auto result = finetune_seed(
      context, split, FinetuneOptions().per_class(4).epochs(2).freeze_encoder(true).validate(false),
      0);
  EXPECT_EQ(result.best_epoch, 2);
  size_t i = 0;
  for (const auto& t : encoder->parameters()) EXPECT_TRUE(torch::equal(t, before[i++]));
  for (const auto& t : encoder->buffers()) EXPECT_TRUE(torch::equal(t, before[i++]));  // eval BN
}

TEST_F(EvalCommandsTest, ExportedWeightsInitialiseTheSameEncoder) {
  const auto cfg = config(runs_ / "e", {"train.max_steps=2"});
  pretrain(cfg, false, "", log_);
  const auto path = export_encoder(cfg, EncoderSource{}, "", log_);
  const auto sidecar = read_json(runs_ / "e/encoder.json");
  EXPECT_EQ(sidecar["backbone"]["name"], "resnet18");
  EXPECT_EQ(sidecar["backbone"]["in_channels"], 3);
  EXPECT_EQ(sidecar["preprocessing"]["std"][0], 0.25);
  // k-NN from the exported state dict equals k-NN from the checkpoint.
  const auto from_checkpoint = knn(cfg, EncoderSource{}, "", log_);
  const auto from_export = knn(cfg, EncoderSource{{}, path, false}, "", log_);
  for (size_t i = 0; i < from_checkpoint.size(); ++i)
    EXPECT_EQ(from_checkpoint[i].metrics.confusion, from_export[i].metrics.confusion);
  // A config with another width cannot take these weights.
  const auto wider = config(runs_ / "w", {"model.width_multiplier=0.25"});
  try {
    knn(wider, EncoderSource{{}, path, false}, "", log_);
    FAIL() << "no error";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("encoder.pt: '"), std::string::npos) << message;
    EXPECT_NE(message.find("' has shape [8"), std::string::npos) << message;
    EXPECT_NE(message.find("the encoder's is [16"), std::string::npos) << message;
  }
}

// A manifest `labels` column: the demo tiles' 4 classes as 3 overlapping labels (class 1 has two).
TEST_F(EvalCommandsTest, MultiLabelDataGetsAMultiLabelProbeAndNoSingleLabelScores) {
  const std::map<std::string, std::string> labels_of_class = {
      {"", ""}, {"0", "x"}, {"1", "x;y"}, {"2", "y"}, {"3", "z"}};
  const auto catalog = io::Catalog::from_path(data_->path());
  const auto classes = catalog.class_names();
  std::ofstream manifest(runs_ / "multi.csv");
  manifest << "path,labels,split\n";
  for (const auto& item : catalog.items()) {
    const auto c = std::lower_bound(classes.begin(), classes.end(), item.label) - classes.begin();
    manifest << item.path << ',' << labels_of_class.at(std::to_string(c)) << ',' << item.split
             << '\n';
  }
  manifest.close();
  const auto cfg =
      config(runs_ / "m", {"data.root=" + runs_ / "multi.csv", "probe.lr=[0.001, 0.01, 0.1]",
                           "probe.epochs=5", "probe.batch_size=16"});
  const EncoderSource random{{}, {}, true};
  const auto features = extract(cfg, random, runs_ / "m/features.pt", log_);
  const auto set = load_features(features);
  EXPECT_EQ(set.class_names, (std::vector<std::string>{"x", "y", "z"}));
  ASSERT_TRUE(set.targets.defined());
  ASSERT_EQ(set.targets.sizes(), (std::vector<int64_t>{64, 3}));
  for (int64_t i = 0; i < set.size(); ++i) {
    const auto c = std::lower_bound(classes.begin(), classes.end(), catalog.items()[i].label) -
                   classes.begin();
    const std::vector<float> expected =
        c == 0 ? std::vector<float>{1, 0, 0}
               : (c == 1 ? std::vector<float>{1, 1, 0}
                         : (c == 2 ? std::vector<float>{0, 1, 0} : std::vector<float>{0, 0, 1}));
    EXPECT_TRUE(torch::equal(set.targets[i], torch::tensor(expected))) << i;
    EXPECT_EQ(set.labels[i].item<int64_t>(), c == 3 ? 2 : (c == 2 ? 1 : 0));  // first label
  }

  const auto result = probe(cfg, random, features, log_);
  EXPECT_TRUE(result.multi_label);
  const auto json = read_json(runs_ / "m/probe.json");
  EXPECT_TRUE(json["multi_label"].get<bool>());
  const auto& chosen = result.heads[result.chosen];
  EXPECT_DOUBLE_EQ(json["val_mean_average_precision"].get<double>(), chosen.val_score);
  EXPECT_DOUBLE_EQ(json["test"]["mean_average_precision"].get<double>(),
                   chosen.multi_label.mean_average_precision);
  for (const char* label : {"x", "y", "z"})
    EXPECT_TRUE(json["test"]["average_precision"][label].is_number()) << label;
  std::ifstream csv(runs_ / "m/probe.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header,
            "lr,weight_decay,val_mean_average_precision,test_mean_average_precision,"
            "test_micro_f1,test_macro_f1,chosen");
  std::ifstream report(write_report(cfg));
  const std::string html((std::istreambuf_iterator<char>(report)),
                         std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("<th>micro-F1</th>"), std::string::npos);
  EXPECT_NE(html.find("chosen on validation mean average precision"), std::string::npos);

  for (const auto& refused : std::vector<std::function<void()>>{
           [&] { knn(cfg, random, features, log_); }, [&] { finetune(cfg, random, log_); }}) {
    const auto message = testing::input_error_of(refused);
    EXPECT_NE(message.find("several labels each (a manifest 'labels' column)"), std::string::npos)
        << message;
  }
}

TEST_F(EvalCommandsTest, AMissingSplitNamesTheDataAndTheSplit) {
  const auto cfg = config(runs_ / "s", {"eval.test_split=val"});
  try {
    knn(cfg, EncoderSource{{}, {}, true}, "", log_);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(
        std::string(e.what()).rfind(
            cfg.data.root() + ": the data set has 48 labelled 'train', 0 labelled 'val' images", 0),
        0u)
        << e.what();
  }
}

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

TEST_F(EvalCommandsTest, TheReportIsOneSelfContainedPageOfTheRun) {
  // A ViT run, so that the report carries attention maps too.
  const auto cfg =
      config(runs_ / "r", {"train.max_steps=3", "probe.lr=[0.001, 0.1]", "probe.epochs=2"},
             "  backbone: vit\n  image_size: 16\n  patch_size: 4\n  dim: 16\n"
             "  depth: 2\n  heads: 2\n");
  pretrain(cfg, false, "", log_);
  knn(cfg, EncoderSource{}, "", log_);
  probe(cfg, EncoderSource{}, "", log_);
  const auto path = write_report(cfg);
  EXPECT_EQ(path, runs_ / "r/report.html");
  std::ifstream in(path);
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* part : {"<h2>Pretraining</h2>", "alt=\"augmented views\"", "<h2>Attention</h2>",
                           "alt=\"attention maps\"", "<h2>k-NN</h2>", "<svg", "backbone: vit"})
    EXPECT_NE(html.find(part), std::string::npos) << part;
  EXPECT_EQ(count_of(html, "data:image/png;base64,"), 2u);
  // Fine-tuning has not run; nothing is fetched from elsewhere.
  EXPECT_NE(html.find("pretext finetune"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("href=\"http"), std::string::npos);
}

}  // namespace
}  // namespace pretext::pipelines
