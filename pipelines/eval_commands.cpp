// The commands that evaluate an encoder: knn, probe and finetune (declared in commands.h).
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <utility>

#include <torch/types.h>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "pipelines/checkpoint.h"
#include "pipelines/commands.h"
#include "pipelines/plot.h"
#include "pipelines/report.h"
#include "pipelines/results.h"
#include "pipelines/run_dir.h"

namespace pretext::pipelines {
namespace {

/// The features to evaluate: a file from `pretext extract`, else those of the source's encoder on
/// the config's data (opened once, here).
FeatureSet feature_set(const RunConfig& config, const EncoderSource& source,
                       const std::string& features, RunLog& log) {
  if (!features.empty()) {
    auto set = load_features(features);
    log.info(features + ": " + std::to_string(set.size()) + " feature vectors of " +
             std::to_string(set.features.size(1)) + " dimensions");
    return set;
  }
  require_encoder(config, source);
  const auto data = open_data(config, DataUse::kEvaluation, log);
  const auto method = load_method(config, source, data.bands(), log);
  return extract_feature_set(*method->encoder(), data.dataset, data.augment,
                             torch::Device(config.run.device()), config.eval.batch_size(),
                             config.data.workers(), config.eval.group_by());
}

std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

SplitCounts counts(const EvalSplit& split) {
  return {static_cast<int64_t>(split.train.size()), static_cast<int64_t>(split.val.size()),
          static_cast<int64_t>(split.test.size())};
}

SplitCounts group_counts(const EvalSplit& split) {
  return {split.train_groups, split.val_groups, split.test_groups};
}

/// eval_split with the run seed, its groups in the run log; its errors name `where`, the data
/// root or feature file.
EvalSplit split_of(const RunConfig& config, const ExampleLabels& examples, bool need_val,
                   const std::string& where, RunLog& log) {
  EvalSplit split;
  try {
    split = eval_split(examples, config.eval, static_cast<uint64_t>(config.run.seed()), need_val);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
  const auto part = [](size_t size, int64_t groups) {
    return std::to_string(size) + " examples in " + std::to_string(groups) + " groups";
  };
  log.info("evaluation split (groups by " + name_of(config.eval.group_by()) + "): train " +
           part(split.train.size(), split.train_groups) +
           (need_val ? ", val " + part(split.val.size(), split.val_groups) : "") + ", test " +
           part(split.test.size(), split.test_groups));
  if (split.groups_across_parts > 0)
    log.warn(where + ": the catalog's splits put " + std::to_string(split.groups_across_parts) +
             " groups (by " + name_of(config.eval.group_by()) +
             ") on more than one side; their examples are not independent");
  return split;
}

/// Refuses multi-label data (`where`: the data root or feature file) for an evaluation that scores
/// one label per example.
void require_single_label(bool multi_label, const std::string& where, const std::string& what) {
  if (multi_label)
    throw InputError(where +
                     ": the examples have several labels each (a manifest 'labels' "
                     "column); " +
                     what +
                     " scores one label per example: use pretext probe, "
                     "which trains one sigmoid per label");
}

/// k-NN of the set's test split against its train split, as the config's eval section says.
std::pair<EvalSplit, std::vector<KnnScore>> knn_of(const RunConfig& config, const FeatureSet& set,
                                                   const std::string& where, RunLog& log) {
  require_single_label(set.targets.defined(), where, "k-NN");
  auto split = split_of(config, set.examples(), false, where, log);
  auto scores = knn_classify(set.features_of(split.train), set.labels_of(split.train),
                             set.features_of(split.test), set.labels_of(split.test), config.eval,
                             static_cast<int64_t>(set.class_names.size()),
                             torch::Device(config.run.device()));
  return {std::move(split), std::move(scores)};
}

/// probe.svg: validation top-1 (mAP for multi-label) against the learning rate, a line per weight
/// decay, the choice marked.
std::string sweep_plot(const ProbeResult& result) {
  const std::string score = result.multi_label ? "mean average precision" : "top-1";
  std::map<double, Series> by_decay;
  for (const auto& head : result.heads) {
    auto& series = by_decay[head.weight_decay];
    series.name = "weight decay " + number(head.weight_decay);
    series.x.push_back(head.lr);
    series.y.push_back(head.val_score);
  }
  std::vector<Series> lines;
  for (auto& [decay, series] : by_decay) lines.push_back(series);
  const auto& chosen = result.heads[result.chosen];
  PlotOptions plot;
  plot.title = "Linear probe: validation " + score + " by learning rate";
  plot.x_label = "learning rate";
  plot.y_label = "validation " + score;
  plot.log_x = true;
  plot.mark_x = chosen.lr;
  plot.mark_y = chosen.val_score;
  return svg_line_plot(lines, plot);
}

/// probe.csv: a row per head.
std::string probe_csv(const ProbeResult& result, bool sweep) {
  std::ostringstream csv;
  if (result.multi_label)
    csv << "lr,weight_decay,val_mean_average_precision," << multi_label_csv_header("test_");
  else
    csv << "lr,weight_decay,val_top1," << metrics_csv_header("test_");
  csv << ",chosen\n";
  for (size_t h = 0; h < result.heads.size(); ++h) {
    const auto& head = result.heads[h];
    csv << head.lr << ',' << head.weight_decay << ',' << (sweep ? head.val_score : NAN) << ','
        << (result.multi_label ? multi_label_csv(head.multi_label) : metrics_csv(head.test)) << ','
        << (h == result.chosen) << '\n';
  }
  return csv.str();
}

}  // namespace

std::vector<KnnScore> evaluate_knn(const RunConfig& config, methods::BackboneImpl& encoder,
                                   const PreparedData& data, RunLog& log) {
  const auto set =
      extract_feature_set(encoder, data.dataset, data.augment, torch::Device(config.run.device()),
                          config.eval.batch_size(), config.data.workers(), config.eval.group_by());
  return knn_of(config, set, config.data.root(), log).second;
}

std::vector<KnnScore> knn(const RunConfig& config, const EncoderSource& source,
                          const std::string& features, RunLog& log) {
  start_command(config, log);
  const auto set = feature_set(config, source, features, log);
  const auto [split, scores] =
      knn_of(config, set, features.empty() ? config.data.root() : features, log);
  const RunDir run(config.run.dir());
  const std::string encoder = features.empty() ? source.describe(config) : features;
  std::ostringstream csv;
  csv << "encoder,k," << metrics_csv_header() << '\n';
  for (const auto& s : scores) {
    csv << encoder << ',' << s.k << ',' << metrics_csv(s.metrics) << '\n';
    log.info("k-NN k=" + std::to_string(s.k) + ": " + metrics_line(s.metrics));
  }
  write_file(run.knn_csv(), csv.str());
  save_json(run.knn_json(), to_json(KnnRecord{encoder, counts(split), config.eval.temperature(),
                                              set.class_names, scores, group_counts(split)}));
  refresh_report(config, log);
  return scores;
}

ProbeResult probe(const RunConfig& config, const EncoderSource& source, const std::string& features,
                  RunLog& log) {
  start_command(config, log);
  const auto set = feature_set(config, source, features, log);
  const bool sweep = config.probe.heads() > 1;
  const auto split = split_of(config, set.examples(), sweep,
                              features.empty() ? config.data.root() : features, log);
  const auto part = [&](const std::vector<int64_t>& indices) {
    return indices.empty() ? LabelledFeatures{}
                           : LabelledFeatures{set.features_of(indices), set.labels_of(indices),
                                              set.targets_of(indices)};
  };
  log.info("linear probe" + std::string(set.targets.defined() ? " (multi-label)" : "") + ": " +
           std::to_string(config.probe.heads()) + " heads on " +
           std::to_string(split.train.size()) + " training, " + std::to_string(split.val.size()) +
           " validation, " + std::to_string(split.test.size()) + " test features");
  const auto result =
      train_probes(part(split.train), part(split.val), part(split.test),
                   static_cast<int64_t>(set.class_names.size()), config.probe,
                   static_cast<uint64_t>(config.run.seed()), torch::Device(config.run.device()));
  const RunDir run(config.run.dir());
  write_file(run.probe_csv(), probe_csv(result, sweep));
  if (sweep) write_file(run.probe_svg(), sweep_plot(result));
  const auto& chosen = result.heads[result.chosen];
  ProbeRecord record{features.empty() ? source.describe(config) : features,
                     counts(split),
                     set.class_names,
                     chosen.lr,
                     chosen.weight_decay,
                     sweep ? std::optional<double>(chosen.val_score) : std::nullopt,
                     chosen.test,
                     group_counts(split)};
  if (result.multi_label) record.multi_label = chosen.multi_label;
  save_json(run.probe_json(), to_json(record));
  log.info("linear probe" +
           (sweep ? " (chose lr " + number(chosen.lr) + ", weight decay " +
                        number(chosen.weight_decay) + " on validation " +
                        (result.multi_label ? "mAP " : "top-1 ") + percent(chosen.val_score) + ")"
                  : std::string()) +
           ": test " +
           (result.multi_label ? metrics_line(chosen.multi_label) : metrics_line(chosen.test)));
  refresh_report(config, log);
  return result;
}

std::vector<FinetuneSeedResult> finetune(const RunConfig& config, const EncoderSource& source,
                                         RunLog& log) {
  start_command(config, log);
  require_encoder(config, source);
  const auto data = open_data(config, DataUse::kEvaluation, log);
  require_single_label(data.dataset->multi_label(), config.data.root(), "fine-tuning");
  const auto& options = config.finetune;
  const auto split = split_of(config, labels_of(*data.dataset, config.eval.group_by()),
                              options.validate(), config.data.root(), log);
  FinetuneContext context;
  context.dataset = data.dataset;
  context.make_encoder = [&] { return load_method(config, source, data.bands(), log)->encoder(); };
  context.augment = data.augment;
  context.device = torch::Device(config.run.device());
  context.workers = config.data.workers();
  context.eval_batch_size = config.eval.batch_size();
  context.run_dir = RunDir(config.run.dir());
  context.log = &log;

  FinetuneRecord record{
      source.describe(config), counts(split), data.dataset->class_names(), {}, {}, {},
      group_counts(split)};
  for (const int64_t seed : options.seeds()) {
    record.seeds.push_back(finetune_seed(context, split, options, seed));
    const auto& r = record.seeds.back();
    log.info("fine-tune seed " + std::to_string(seed) + " on " + std::to_string(r.labelled) +
             " labels, epoch " + std::to_string(r.best_epoch) + " of " +
             std::to_string(r.epochs_run) + ": test " + metrics_line(r.test));
  }
  record.summarise();
  std::ostringstream csv;
  csv << "seed,labelled,epochs_run,best_epoch," << metrics_csv_header() << '\n';
  for (const auto& r : record.seeds)
    csv << r.seed << ',' << r.labelled << ',' << r.epochs_run << ',' << r.best_epoch << ','
        << metrics_csv(r.test) << '\n';
  write_file(context.run_dir.finetune_csv(), csv.str());
  save_json(context.run_dir.finetune_json(), to_json(record));
  log.info("fine-tune over " + std::to_string(record.seeds.size()) + " seeds: test top-1 " +
           percent(record.mean.top1) + " +- " + percent(record.std.top1));
  refresh_report(config, log);
  return record.seeds;
}

}  // namespace pretext::pipelines
