#include "pipelines/results.h"

#include <cmath>
#include <functional>

#include <nlohmann/json.hpp>

#include "pipelines/checkpoint.h"

namespace pretext::pipelines {
namespace {

using Json = nlohmann::ordered_json;

Json to_json(const SplitCounts& counts) {
  return {{"train", counts.train}, {"val", counts.val}, {"test", counts.test}};
}

SplitCounts split_counts(const nlohmann::json& json) {
  return {json.at("train").get<int64_t>(), json.at("val").get<int64_t>(),
          json.at("test").get<int64_t>()};
}

Json to_json(const FinetuneRecord::Spread& spread) {
  return {{"top1", spread.top1},
          {"balanced_accuracy", spread.balanced_accuracy},
          {"macro_f1", spread.macro_f1}};
}

FinetuneRecord::Spread spread(const nlohmann::json& json) {
  return {json.at("top1").get<double>(), json.at("balanced_accuracy").get<double>(),
          json.at("macro_f1").get<double>()};
}

// The fields every record starts with.
template <typename Record>
Json header(const Record& record) {
  Json json;
  json["encoder"] = record.encoder;
  json["examples"] = to_json(record.examples);
  json["groups"] = to_json(record.groups);
  return json;
}

template <typename Record>
void read_header(const nlohmann::json& json, Record& record) {
  record.encoder = json.at("encoder").get<std::string>();
  record.examples = split_counts(json.at("examples"));
  record.groups = split_counts(json.at("groups"));
  record.classes = json.at("classes").get<std::vector<std::string>>();
}

Json to_json(const Figure& figure) {
  return {{"caption", figure.caption}, {"width", figure.width}};
}

Figure figure(const nlohmann::json& json) {
  return {json.at("caption").get<std::string>(), json.at("width").get<int64_t>()};
}

}  // namespace

void FinetuneRecord::summarise() {
  const auto over_seeds = [&](const std::function<double(const ClassificationMetrics&)>& get,
                              double& mean_out, double& std_out) {
    double total = 0, square = 0;
    for (const auto& s : seeds) total += get(s.test);
    mean_out = seeds.empty() ? 0.0 : total / static_cast<double>(seeds.size());
    for (const auto& s : seeds) square += (get(s.test) - mean_out) * (get(s.test) - mean_out);
    std_out = seeds.size() > 1 ? std::sqrt(square / static_cast<double>(seeds.size() - 1)) : 0.0;
  };
  over_seeds([](const ClassificationMetrics& m) { return m.top1; }, mean.top1, std.top1);
  over_seeds([](const ClassificationMetrics& m) { return m.balanced_accuracy; },
             mean.balanced_accuracy, std.balanced_accuracy);
  over_seeds([](const ClassificationMetrics& m) { return m.macro_f1; }, mean.macro_f1,
             std.macro_f1);
}

nlohmann::ordered_json to_json(const KnnRecord& record) {
  Json json = header(record);
  json["temperature"] = record.temperature;
  json["classes"] = record.classes;
  json["results"] = Json::array();
  for (const auto& score : record.results) {
    auto entry = to_json(score.metrics);
    entry["k"] = score.k;
    json["results"].push_back(entry);
  }
  return json;
}

nlohmann::ordered_json to_json(const ProbeRecord& record) {
  Json json = header(record);
  json["classes"] = record.classes;
  json["lr"] = record.lr;
  json["weight_decay"] = record.weight_decay;
  // Single-label records keep the keys they always had: val_top1 and the classification test.
  json["multi_label"] = record.multi_label.has_value();
  json[record.multi_label ? "val_mean_average_precision" : "val_top1"] =
      record.val_score ? Json(*record.val_score) : Json(nullptr);
  json["test"] =
      record.multi_label ? to_json(*record.multi_label, record.classes) : to_json(record.test);
  return json;
}

nlohmann::ordered_json to_json(const FinetuneRecord& record) {
  Json json = header(record);
  json["classes"] = record.classes;
  json["seeds"] = Json::array();
  for (const auto& seed : record.seeds) {
    auto entry = to_json(seed.test);
    entry["seed"] = seed.seed;
    entry["labelled"] = seed.labelled;
    entry["epochs_run"] = seed.epochs_run;
    entry["best_epoch"] = seed.best_epoch;
    json["seeds"].push_back(entry);
  }
  json["mean"] = to_json(record.mean);
  json["std"] = to_json(record.std);
  return json;
}

KnnRecord knn_record(const nlohmann::json& json) {
  KnnRecord record;
  read_header(json, record);
  record.temperature = json.at("temperature").get<double>();
  for (const auto& entry : json.at("results"))
    record.results.push_back({entry.at("k").get<int64_t>(), metrics_from_json(entry)});
  return record;
}

ProbeRecord probe_record(const nlohmann::json& json) {
  ProbeRecord record;
  read_header(json, record);
  record.lr = json.at("lr").get<double>();
  record.weight_decay = json.at("weight_decay").get<double>();
  const bool multi_label = json.value("multi_label", false);
  const auto& val = json.at(multi_label ? "val_mean_average_precision" : "val_top1");
  if (!val.is_null()) record.val_score = val.get<double>();
  if (multi_label)
    record.multi_label = multi_label_from_json(json.at("test"), record.classes);
  else
    record.test = metrics_from_json(json.at("test"));
  return record;
}

FinetuneRecord finetune_record(const nlohmann::json& json) {
  FinetuneRecord record;
  read_header(json, record);
  for (const auto& entry : json.at("seeds"))
    record.seeds.push_back({entry.at("seed").get<int64_t>(), entry.at("labelled").get<int64_t>(),
                            entry.at("epochs_run").get<int64_t>(),
                            entry.at("best_epoch").get<int64_t>(), metrics_from_json(entry)});
  record.mean = spread(json.at("mean"));
  record.std = spread(json.at("std"));
  return record;
}

nlohmann::ordered_json to_json(const FiguresRecord& record) {
  Json json;
  json["views"] = to_json(record.views);
  json["attention"] = record.attention ? to_json(*record.attention) : Json(nullptr);
  return json;
}

FiguresRecord figures_record(const nlohmann::json& json) {
  FiguresRecord record;
  record.views = figure(json.at("views"));
  if (!json.at("attention").is_null()) record.attention = figure(json.at("attention"));
  return record;
}

void save_json(const std::string& path, const nlohmann::ordered_json& json) {
  write_file(path, json.dump(2) + "\n");
}

}  // namespace pretext::pipelines
