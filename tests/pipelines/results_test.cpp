// The result records: what knn, probe and finetune write is what the report reads back, under the
// keys README and users' scripts rely on.

#include <cmath>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "pipelines/results.h"
#include "pipelines/training_metrics.h"
#include "tests/io/test_data.h"

namespace pretext::pipelines {
namespace {

ClassificationMetrics metrics(double top1, std::optional<double> auroc) {
  ClassificationMetrics m;
  m.count = 10;
  m.top1 = top1;
  m.balanced_accuracy = top1 - 0.1;
  m.macro_f1 = top1 - 0.2;
  m.auroc = auroc;
  m.confusion = {{3, 1}, {2, 4}};
  return m;
}

void expect_same(const ClassificationMetrics& a, const ClassificationMetrics& b) {
  EXPECT_EQ(a.count, b.count);
  EXPECT_DOUBLE_EQ(a.top1, b.top1);
  EXPECT_DOUBLE_EQ(a.balanced_accuracy, b.balanced_accuracy);
  EXPECT_DOUBLE_EQ(a.macro_f1, b.macro_f1);
  EXPECT_EQ(a.auroc, b.auroc);
  EXPECT_EQ(a.confusion, b.confusion);
}

TEST(Results, KnnAndProbeRecordsRoundTripUnderTheirKeys) {
  const KnnRecord knn{"runs/x/checkpoint.pt",
                      {80, 0, 20},
                      0.07,
                      {"dark", "light"},
                      {{1, metrics(0.7, 0.8)}, {20, metrics(0.8, std::nullopt)}},
                      {8, 0, 2}};  // groups: patients, say
  const auto json = to_json(knn);
  EXPECT_EQ(json["examples"]["train"], 80);
  EXPECT_EQ(json["groups"]["test"], 2);
  EXPECT_EQ(json["results"][1]["k"], 20);
  EXPECT_TRUE(json["results"][1]["auroc"].is_null());
  const auto back = knn_record(nlohmann::json::parse(json.dump()));
  EXPECT_EQ(back.encoder, knn.encoder);
  EXPECT_EQ(back.examples.test, 20);
  EXPECT_EQ(back.groups.train, 8);
  EXPECT_EQ(back.groups.test, 2);
  EXPECT_DOUBLE_EQ(back.temperature, 0.07);
  EXPECT_EQ(back.classes, knn.classes);
  ASSERT_EQ(back.results.size(), 2u);
  EXPECT_EQ(back.results[1].k, 20);
  for (size_t i = 0; i < 2; ++i) expect_same(back.results[i].metrics, knn.results[i].metrics);

  const ProbeRecord probe{"random init", {60, 20, 20}, {"a", "b"},         1e-3,
                          1e-4,          std::nullopt, metrics(0.75, 0.9), {6, 2, 2}};
  auto probe_json = to_json(probe);
  EXPECT_TRUE(probe_json["val_top1"].is_null());
  auto probe_back = probe_record(nlohmann::json::parse(probe_json.dump()));
  EXPECT_FALSE(probe_back.val_score.has_value());
  EXPECT_FALSE(probe_back.multi_label.has_value());
  EXPECT_DOUBLE_EQ(probe_back.weight_decay, 1e-4);
  expect_same(probe_back.test, probe.test);
  ProbeRecord swept = probe;
  swept.val_score = 0.66;
  probe_back = probe_record(nlohmann::json::parse(to_json(swept).dump()));
  EXPECT_DOUBLE_EQ(probe_back.val_score.value_or(-1), 0.66);

  // Multi-label: the test scores by label name, the choice on validation mAP.
  ProbeRecord multi = swept;
  multi.test = {};
  multi.multi_label = MultiLabelMetrics{20, {0.5, std::nullopt}, 0.5, 0.4, 0.3};
  const auto multi_json = to_json(multi);
  EXPECT_TRUE(multi_json["multi_label"].get<bool>());
  EXPECT_DOUBLE_EQ(multi_json["val_mean_average_precision"].get<double>(), 0.66);
  EXPECT_DOUBLE_EQ(multi_json["test"]["average_precision"]["a"].get<double>(), 0.5);
  EXPECT_TRUE(multi_json["test"]["average_precision"]["b"].is_null());
  probe_back = probe_record(nlohmann::json::parse(multi_json.dump()));
  ASSERT_TRUE(probe_back.multi_label.has_value());
  EXPECT_DOUBLE_EQ(probe_back.val_score.value_or(-1), 0.66);
  EXPECT_EQ(probe_back.multi_label->count, 20);
  EXPECT_DOUBLE_EQ(probe_back.multi_label->average_precision[0].value_or(-1), 0.5);
  EXPECT_FALSE(probe_back.multi_label->average_precision[1].has_value());
  EXPECT_DOUBLE_EQ(probe_back.multi_label->mean_average_precision, 0.5);
  EXPECT_DOUBLE_EQ(probe_back.multi_label->micro_f1, 0.4);
  EXPECT_DOUBLE_EQ(probe_back.multi_label->macro_f1, 0.3);
}

TEST(Results, FinetuneRecordSummarisesSeedsWithTheSampleDeviation) {
  FinetuneRecord record{"runs/x/checkpoint.pt", {90, 10, 20}, {"a", "b"}, {}, {}, {}, {9, 1, 2}};
  record.seeds.push_back({0, 9, 5, 3, metrics(0.6, 0.7)});
  record.seeds.push_back({1, 9, 5, 4, metrics(0.8, 0.9)});
  record.summarise();
  EXPECT_DOUBLE_EQ(record.mean.top1, 0.7);
  // Two seeds 0.1 from their mean: sample deviation sqrt(0.02 / 1).
  EXPECT_NEAR(record.std.top1, std::sqrt(0.02), 1e-12);
  const auto back = finetune_record(nlohmann::json::parse(to_json(record).dump()));
  ASSERT_EQ(back.seeds.size(), 2u);
  EXPECT_EQ(back.seeds[1].best_epoch, 4);
  EXPECT_EQ(back.seeds[1].labelled, 9);
  expect_same(back.seeds[1].test, record.seeds[1].test);
  EXPECT_DOUBLE_EQ(back.mean.macro_f1, record.mean.macro_f1);
  EXPECT_DOUBLE_EQ(back.std.top1, record.std.top1);
  record.seeds.resize(1);
  record.summarise();
  EXPECT_EQ(record.std.top1, 0.0);
}

TEST(Results, FiguresRecordRoundTrips) {
  FiguresRecord with;
  with.views.caption = "views of 8 images";
  with.views.width = 420;
  with.attention = Figure();
  with.attention->caption = "attention";
  with.attention->width = 210;
  const auto back = figures_record(nlohmann::json::parse(to_json(with).dump()));
  EXPECT_EQ(back.views.caption, "views of 8 images");
  EXPECT_EQ(back.views.width, 420);
  ASSERT_TRUE(back.attention);
  EXPECT_EQ(back.attention->width, 210);
  EXPECT_FALSE(figures_record(nlohmann::json::parse(to_json(FiguresRecord{}).dump())).attention);
}

TEST(Results, MetricsCsvIsReadByColumnName) {
  testing::TempDir dir;
  const std::string path = dir / "metrics.csv";
  testing::write_text(path, training_csv_header() + "\n" + to_csv({1, 0, 2.5, 0.1, 300}) + "\n" +
                                to_csv({2, 1, 2.25, 0.05, 310.5}) + "\n");
  EXPECT_EQ(training_csv_header(), "step,epoch,loss,lr,images_per_s");
  auto rows = read_training_rows(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].step, 2);
  EXPECT_EQ(rows[1].epoch, 1);
  EXPECT_DOUBLE_EQ(rows[1].loss, 2.25);
  EXPECT_DOUBLE_EQ(rows[1].lr, 0.05);
  EXPECT_DOUBLE_EQ(rows[1].images_per_s, 310.5);
  // Columns in another order (a file a script rewrote) are found by their names.
  testing::write_text(path, "loss,step,images_per_s,lr,epoch\n1.5,7,100,0.2,3\n");
  rows = read_training_rows(path);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].step, 7);
  EXPECT_DOUBLE_EQ(rows[0].loss, 1.5);
  EXPECT_EQ(rows[0].epoch, 3);
  // A missing column or a cell that is no number names the file.
  testing::write_text(path, "step,epoch,loss,lr\n1,0,2,0.1\n");
  EXPECT_NE(testing::input_error_of([&] {
              read_training_rows(path);
            }).find("metrics.csv: no column 'images_per_s'"),
            std::string::npos);
  testing::write_text(path, training_csv_header() + "\n1,0,nan?,0.1,3\n");
  EXPECT_NE(testing::input_error_of([&] {
              read_training_rows(path);
            }).find("metrics.csv:2: loss is not a number"),
            std::string::npos);
  EXPECT_TRUE(read_training_rows(dir / "missing.csv").empty());
}

}  // namespace
}  // namespace pretext::pipelines
