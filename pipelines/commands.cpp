#include "pipelines/commands.h"

#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include <torch/types.h>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "io/gdal_raster.h"
#include "io/slide.h"
#include "pipelines/checkpoint.h"
#include "pipelines/export.h"
#include "pipelines/plot.h"
#include "pipelines/report.h"
#include "pipelines/results.h"
#include "pipelines/run_dir.h"
#include "pipelines/system.h"

namespace pretext::pipelines {
namespace fs = std::filesystem;
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_interrupt(int) { g_interrupted = 1; }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw InputError(path + ": cannot write");
}

}  // namespace

void prepare_compute(const RunConfig& config, RunLog& log) {
  const int64_t threads = configure_threads(config.run.threads());
  const auto blas = measure_blas();
  log.file_only("threads " + std::to_string(threads) + ", device " + config.run.device() +
                ", BLAS " + (blas.implementation.empty() ? "" : blas.implementation + " ") +
                std::to_string(static_cast<int>(blas.gflops)) + " GFLOP/s (" + blas.library + ")");
  if (const auto warning = blas_warning(blas); !warning.empty()) log.warn(warning);
}

namespace {

constexpr size_t kBadFilesLogged = 20;

std::shared_ptr<io::Dataset> open_slices(const RunConfig& config, const io::Catalog& catalog,
                                         bool pretraining, RunLog& log) {
  auto slices =
      std::make_shared<domains::SliceDataset>(catalog, config.data.slice_options(pretraining));
  const auto& bad = slices->dicom().bad_files;
  for (size_t i = 0; i < std::min(bad.size(), kBadFilesLogged); ++i)
    log.warn("skipped " + bad[i].message);
  if (bad.size() > kBadFilesLogged)
    log.warn("skipped " + std::to_string(bad.size() - kBadFilesLogged) + " more bad files");
  for (const auto& series : slices->dicom().series)
    if (series.missing_slices > 0)
      log.warn(series.slices.front().path + ": its series seems to miss " +
               std::to_string(series.missing_slices) + " slices (gaps along the slice normal)");
  log.info(config.data.root() + ": " + slices->summary());
  return slices;
}

std::shared_ptr<io::Dataset> open_tiles(const RunConfig& config, const io::Catalog& catalog,
                                        bool pretraining, RunLog& log) {
  auto tiles = std::make_shared<domains::TileDataset>(
      catalog, config.data.tile_options(pretraining ? RunDir(config.run.dir()).thumbnails() : ""));
  for (const auto& bad : tiles->bad_slides()) log.warn("skipped " + bad.message);
  for (const auto& note : tiles->notes())
    if (note.find("fallback_microns_per_pixel") != std::string::npos)
      log.warn(note);
    else
      log.file_only(note);
  log.info(config.data.root() + ": " + tiles->summary() +
           (pretraining ? "; tissue thumbnails in " + RunDir(config.run.dir()).thumbnails() : ""));
  return tiles;
}

// What band statistics were measured on: the same key reads them back from the run directory.
nlohmann::json statistics_key(const DataOptions& data) {
  return {{"root", data.root()},
          {"bands", data.bands()},
          {"band_names", data.band_names()},
          {"image_size", data.image_size()},
          {"ground_sample_distance", data.ground_sample_distance()},
          {"min_valid_fraction", data.min_valid_fraction()},
          {"statistics_windows", data.statistics_windows()},
          {"window_placement", data.window_placement()},
          {"fallback_nodata", data.fallback_nodata()},
          {"cloud_band", data.cloud_band()},
          {"cloud_values", data.cloud_values()}};
}

std::shared_ptr<io::Dataset> open_scenes(const RunConfig& config, const io::Catalog& catalog,
                                         bool pretraining, RunLog& log) {
  io::set_gdal_cache_mb(config.data.gdal_cache_mb());
  auto scenes = std::make_shared<domains::SceneDataset>(
      catalog,
      config.data.scene_options(pretraining).seed(static_cast<uint64_t>(config.run.seed())));
  for (const auto& bad : scenes->bad_files()) log.warn("skipped " + bad.message);
  for (const auto& note : scenes->notes()) log.file_only(note);
  log.info(config.data.root() + ": " + scenes->summary());
  const std::string path = RunDir(config.run.dir()).band_statistics();
  const auto key = statistics_key(config.data);
  auto statistics = domains::load_band_statistics(path, key);
  if (statistics) {
    log.info("band statistics from " + path);
  } else {
    statistics = scenes->measure_statistics(config.data.statistics_windows());
    domains::save_band_statistics(path, key, *statistics);
    log.info("band statistics of " + std::to_string(statistics->windows) + " windows (" +
             std::to_string(statistics->pixels) + " valid pixels per band) written to " + path);
  }
  scenes->set_statistics(*statistics);
  // A band of one value has no spread to divide by: it is centred only.
  std::vector<double> spread = statistics->std;
  for (double& s : spread) s = s > 0 ? s : 1.0;
  config.augment.mean(statistics->mean).std(spread).frames(pretraining ? config.data.frames() : 1);
  return scenes;
}

// The images pretraining uses: those of `data.split`, or all of them when it is empty. A
// catalog without any split (a PACS export, a plain folder) gives all its images to "train".
io::Catalog pretraining_images(const RunConfig& config, const io::Catalog& catalog, RunLog& log) {
  const std::string& split = config.data.split();
  if (split.empty()) return catalog;
  if (!catalog.has_splits()) {
    if (split != "train")
      throw InputError(config.data.root() + ": no images in split '" + split +
                       "' (the data has no train / val / test folders or split column)");
    log.info(config.data.root() + ": no train / val / test splits; all " +
             std::to_string(catalog.size()) + " images are used for split 'train'");
    return catalog;
  }
  auto images = catalog.with_split(split);
  if (images.size() == 0)
    throw InputError(config.data.root() + ": no images in split '" + split + "'");
  return images;
}

}  // namespace

std::shared_ptr<io::Dataset> open_dataset(const RunConfig& config, bool pretraining, RunLog& log) {
  if (config.data.kind() == "rasters") {
    auto catalog = io::Catalog::from_path(config.data.root());
    if (pretraining) catalog = pretraining_images(config, catalog, log);
    return open_scenes(config, catalog, pretraining, log);
  }
  const bool slides = config.data.kind() == "slides";
  auto catalog = io::Catalog::from_path(
      config.data.root(), slides ? std::function<bool(const std::string&)>(io::is_slide) : nullptr);
  if (catalog.skipped_files() > 0)
    log.info(config.data.root() + ": skipped " + std::to_string(catalog.skipped_files()) +
             " files that are not images");
  if (pretraining) catalog = pretraining_images(config, catalog, log);
  if (slides) {
    auto tiles = open_tiles(config, catalog, pretraining, log);
    config.check_bands(tiles->channels());
    return tiles;
  }
  // DICOM files and volumes become slices; every other format is read as whole 2D images.
  std::string medical, flat;
  for (const auto& item : catalog.items()) {
    const auto format = io::detect_format(item.path);
    auto& example =
        (format == io::Format::kDicom || format == io::Format::kVolume) ? medical : flat;
    if (example.empty()) example = item.path;
  }
  if (!medical.empty() && !flat.empty())
    throw InputError(config.data.root() + ": mixes DICOM files or volumes (e.g. " + medical +
                     ") with 2D images (e.g. " + flat + "); give each its own data root");
  std::shared_ptr<io::Dataset> dataset;
  if (!medical.empty()) {
    dataset = open_slices(config, catalog, pretraining, log);
  } else {
    dataset = std::make_shared<io::ImageDataset>(catalog, config.data.dataset_options());
    log.info(config.data.root() + ": " + std::to_string(dataset->size()) + " images, " +
             std::to_string(dataset->channels()) + " bands, " +
             std::to_string(dataset->class_names().size()) + " labels");
  }
  config.check_bands(dataset->channels());
  return dataset;
}

namespace {

/// Opens the run directory and its log; every command starts here.
void start_command(const RunConfig& config, RunLog& log) {
  const RunDir run(config.run.dir());
  run.create();
  log.open(run.log());
  prepare_compute(config, log);
}

std::string checkpoint_path(const RunConfig& config, const EncoderSource& source) {
  return source.checkpoint.empty() ? RunDir(config.run.dir()).checkpoint() : source.checkpoint;
}

void init_encoder_from(const std::string& path, methods::BackboneImpl& encoder, RunLog& log) {
  const auto skipped = load_state_dict(path, encoder);
  log.info("encoder initialised from " + path +
           (skipped.empty() ? ""
                            : " (skipped " + std::to_string(skipped.size()) +
                                  " classifier-head tensors, e.g. " + skipped[0] + ")"));
}

/// Fails before any data is read when the source names no file.
void require_encoder(const RunConfig& config, const EncoderSource& source) {
  if (source.random_init) return;
  const auto path = source.init_from.empty() ? checkpoint_path(config, source) : source.init_from;
  std::error_code error;
  if (!fs::is_regular_file(path, error))
    throw InputError(path + (source.init_from.empty()
                                 ? ": no checkpoint here (pretrain first, pass --checkpoint, "
                                   "--init-from a state dict, or --random-init)"
                                 : ": no such file"));
}

FeatureSet feature_set(const RunConfig& config, const EncoderSource& source,
                       const std::string& features, RunLog& log) {
  if (!features.empty()) {
    auto set = load_features(features);
    log.info(features + ": " + std::to_string(set.size()) + " feature vectors of " +
             std::to_string(set.features.size(1)) + " dimensions");
    return set;
  }
  require_encoder(config, source);
  auto dataset = open_dataset(config, false, log);
  auto method = load_method(config, source, dataset->channels(), log);
  return extract_feature_set(*method->encoder(), dataset, config.augment,
                             torch::Device(config.run.device()), config.eval.batch_size(),
                             config.data.workers());
}

std::string percent(double fraction) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%.2f%%", 100.0 * fraction);
  return buffer;
}

std::string metrics_csv_header(const std::string& prefix = "") {
  return prefix + "top1," + prefix + "balanced_accuracy," + prefix + "macro_f1," + prefix + "auroc";
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

std::string metrics_csv(const ClassificationMetrics& m) {
  std::ostringstream row;
  row << m.top1 << ',' << m.balanced_accuracy << ',' << m.macro_f1 << ',';
  if (m.auroc) row << *m.auroc;
  return row.str();
}

std::string metrics_line(const ClassificationMetrics& m) {
  return "top-1 " + percent(m.top1) + ", balanced accuracy " + percent(m.balanced_accuracy) +
         ", macro-F1 " + percent(m.macro_f1) + (m.auroc ? ", AUROC " + percent(*m.auroc) : "");
}

void write_json(const std::string& path, const nlohmann::ordered_json& json) {
  write_text(path, json.dump(2) + "\n");
}

/// Collects a backbone's config fields for the export sidecar.
class JsonFields : public FieldVisitor {
 public:
  explicit JsonFields(nlohmann::ordered_json& json) : json_(json) {}
  void field(const char* name, bool& v, const Check&) override { json_[name] = v; }
  void field(const char* name, int64_t& v, const Check&) override { json_[name] = v; }
  void field(const char* name, double& v, const Check&) override { json_[name] = v; }
  void field(const char* name, std::string& v, const Check&) override { json_[name] = v; }
  void field(const char* name, std::vector<int64_t>& v, const Check&) override { json_[name] = v; }
  void field(const char* name, std::vector<double>& v, const Check&) override { json_[name] = v; }
  void field(const char* name, std::vector<std::string>& v, const Check&) override {
    json_[name] = v;
  }

 private:
  nlohmann::ordered_json& json_;
};

/// Refreshes report.html; a failure (say, the data moved since the features were extracted)
/// costs the report, not the results already written.
void refresh_report(const RunConfig& config, RunLog& log) {
  try {
    log.file_only("report: " + write_report(config, log));
  } catch (const InputError& e) {
    log.warn(std::string("report.html not updated: ") + e.what());
  }
}

}  // namespace

std::shared_ptr<methods::MethodImpl> load_method(const RunConfig& config,
                                                 const EncoderSource& source, int64_t channels,
                                                 RunLog& log) {
  require_encoder(config, source);
  auto method = config.build_method(channels);
  if (!source.init_from.empty())
    init_encoder_from(source.init_from, *method->encoder(), log);
  else if (!source.random_init)
    load_checkpoint(checkpoint_path(config, source), *method, nullptr, torch::kCPU);
  method->to(torch::Device(config.run.device()));
  return method;
}

std::string EncoderSource::describe(const RunConfig& config) const {
  if (!init_from.empty()) return init_from;
  return random_init ? "random-init" : checkpoint_path(config, *this);
}

TrainResult pretrain(const RunConfig& config, bool resume, const std::string& init_from,
                     RunLog& log) {
  const std::string& dir = config.run.dir();
  start_command(config, log);
  auto dataset = open_dataset(config, true, log);
  const std::string resolved = config.file->resolved_yaml();
  const int64_t frames = config.augment.frames();
  auto method = config.build_method(dataset->channels() / frames);
  if (frames > 1 && !method->joint_frames() && method->view_count() != frames)
    throw ConfigError(config.file->where("data", "frames") + ": " + std::to_string(frames) +
                      " dates per example, but " + config.method_name + " takes " +
                      std::to_string(method->view_count()) + " views (one per date)");
  if (!init_from.empty() && !resume) init_encoder_from(init_from, *method->encoder(), log);
  TrainerContext context;
  context.run_dir = RunDir(dir);
  context.seed = static_cast<uint64_t>(config.run.seed());
  context.device = torch::Device(config.run.device());
  context.config_text = resolved;
  context.log = &log;
  Trainer trainer(method, config.train, context);
  if (resume) trainer.resume();
  write_text(RunDir(dir).config(), resolved);
  log.info(std::string(resume ? "resuming " : "pretraining ") + config.method_name + " on " +
           config.backbone_name + " in " + dir);

  g_interrupted = 0;
  auto previous = std::signal(SIGINT, on_interrupt);
  const auto result = trainer.fit(
      dataset, domains::ViewAugment(config.augment),
      io::LoaderOptions().workers(config.data.workers()).prefetch(config.data.prefetch()),
      [](int64_t) { return g_interrupted != 0; });
  std::signal(SIGINT, previous);
  if (result.interrupted) log.info("interrupted; continue with --resume");
  refresh_report(config, log);
  return result;
}

std::string extract(const RunConfig& config, const EncoderSource& source, const std::string& out,
                    RunLog& log) {
  start_command(config, log);
  const auto set = feature_set(config, source, "", log);
  const std::string path = out.empty() ? RunDir(config.run.dir()).features() : out;
  save_features(path, set);
  log.info("features of " + std::to_string(set.size()) + " images (" +
           std::to_string(set.features.size(1)) + " dimensions) from " + source.describe(config) +
           " written to " + path);
  return path;
}

namespace {

/// eval_split with the run seed; its errors name `where`, the data root or feature file.
EvalSplit split_of(const RunConfig& config, const std::vector<int64_t>& labels,
                   const std::vector<std::string>& splits, bool need_val,
                   const std::string& where) {
  try {
    return eval_split(labels, splits, config.eval, static_cast<uint64_t>(config.run.seed()),
                      need_val);
  } catch (const InputError& e) {
    throw InputError(where + ": " + e.what());
  }
}

/// k-NN of the set's test split against its train split, as the config's eval section says.
std::pair<EvalSplit, std::vector<KnnScore>> knn_of(const RunConfig& config, const FeatureSet& set,
                                                   const std::string& where) {
  auto split = split_of(config, set.label_list(), set.splits, false, where);
  auto scores = knn_classify(set.features_of(split.train), set.labels_of(split.train),
                             set.features_of(split.test), set.labels_of(split.test), config.eval,
                             static_cast<int64_t>(set.class_names.size()));
  return {std::move(split), std::move(scores)};
}

}  // namespace

std::vector<KnnScore> evaluate_knn(const RunConfig& config, methods::BackboneImpl& encoder,
                                   std::shared_ptr<const io::Dataset> dataset) {
  const auto set =
      extract_feature_set(encoder, dataset, config.augment, torch::Device(config.run.device()),
                          config.eval.batch_size(), config.data.workers());
  return knn_of(config, set, config.data.root()).second;
}

std::vector<KnnScore> knn(const RunConfig& config, const EncoderSource& source,
                          const std::string& features, RunLog& log) {
  start_command(config, log);
  const auto set = feature_set(config, source, features, log);
  const auto [split, scores] =
      knn_of(config, set, features.empty() ? config.data.root() : features);
  const std::string dir = config.run.dir();
  const std::string encoder = features.empty() ? source.describe(config) : features;
  std::ofstream csv(RunDir(dir).knn_csv(), std::ios::trunc);
  csv << "encoder,k," << metrics_csv_header() << '\n';
  for (const auto& s : scores) {
    csv << encoder << ',' << s.k << ',' << metrics_csv(s.metrics) << '\n';
    log.info("k-NN k=" + std::to_string(s.k) + ": " + metrics_line(s.metrics));
  }
  write_json(RunDir(dir).knn_json(),
             to_json(KnnRecord{encoder, counts(split), config.eval.temperature(), set.class_names,
                               scores}));
  refresh_report(config, log);
  return scores;
}

ProbeResult probe(const RunConfig& config, const EncoderSource& source, const std::string& features,
                  RunLog& log) {
  start_command(config, log);
  const auto set = feature_set(config, source, features, log);
  const bool sweep = config.probe.heads() > 1;
  const auto split = split_of(config, set.label_list(), set.splits, sweep,
                              features.empty() ? config.data.root() : features);
  const auto part = [&](const std::vector<int64_t>& indices) {
    return indices.empty() ? LabelledFeatures{}
                           : LabelledFeatures{set.features_of(indices), set.labels_of(indices)};
  };
  log.info("linear probe: " + std::to_string(config.probe.heads()) + " heads on " +
           std::to_string(split.train.size()) + " training, " + std::to_string(split.val.size()) +
           " validation, " + std::to_string(split.test.size()) + " test features");
  const auto result = train_probes(part(split.train), part(split.val), part(split.test),
                                   static_cast<int64_t>(set.class_names.size()), config.probe,
                                   static_cast<uint64_t>(config.run.seed()));

  const std::string dir = config.run.dir();
  std::ofstream csv(RunDir(dir).probe_csv(), std::ios::trunc);
  csv << "lr,weight_decay,val_top1," << metrics_csv_header("test_") << ",chosen\n";
  std::map<double, Series> by_decay;
  for (size_t h = 0; h < result.heads.size(); ++h) {
    const auto& head = result.heads[h];
    csv << head.lr << ',' << head.weight_decay << ',' << (sweep ? head.val_top1 : NAN) << ','
        << metrics_csv(head.test) << ',' << (h == result.chosen) << '\n';
    auto& series = by_decay[head.weight_decay];
    series.name = "weight decay " + number(head.weight_decay);
    series.x.push_back(head.lr);
    series.y.push_back(head.val_top1);
  }
  const auto& chosen = result.heads[result.chosen];
  if (sweep) {
    std::vector<Series> lines;
    for (auto& [decay, series] : by_decay) lines.push_back(series);
    PlotOptions plot;
    plot.title = "Linear probe: validation top-1 by learning rate";
    plot.x_label = "learning rate";
    plot.y_label = "validation top-1";
    plot.log_x = true;
    plot.mark_x = chosen.lr;
    plot.mark_y = chosen.val_top1;
    write_text(RunDir(dir).probe_svg(), svg_line_plot(lines, plot));
  }
  write_json(RunDir(dir).probe_json(),
             to_json(ProbeRecord{features.empty() ? source.describe(config) : features,
                                 counts(split), set.class_names, chosen.lr, chosen.weight_decay,
                                 sweep ? std::optional<double>(chosen.val_top1) : std::nullopt,
                                 chosen.test}));
  log.info("linear probe" +
           (sweep ? " (chose lr " + number(chosen.lr) + ", weight decay " +
                        number(chosen.weight_decay) + " on validation top-1 " +
                        percent(chosen.val_top1) + ")"
                  : std::string()) +
           ": test " + metrics_line(chosen.test));
  refresh_report(config, log);
  return result;
}

std::vector<FinetuneSeedResult> finetune(const RunConfig& config, const EncoderSource& source,
                                         RunLog& log) {
  start_command(config, log);
  require_encoder(config, source);
  const auto dataset = open_dataset(config, false, log);
  std::vector<int64_t> labels;
  std::vector<std::string> splits;
  for (int64_t i = 0; i < dataset->size(); ++i) {
    labels.push_back(dataset->label_of(i));
    splits.push_back(dataset->item(i).split);
  }
  const auto& options = config.finetune;
  const auto split = split_of(config, labels, splits, options.validate(), config.data.root());
  FinetuneContext context;
  context.dataset = dataset;
  context.make_encoder = [&] {
    return load_method(config, source, dataset->channels(), log)->encoder();
  };
  context.augment = config.augment;
  context.device = torch::Device(config.run.device());
  context.workers = config.data.workers();
  context.eval_batch_size = config.eval.batch_size();
  context.run_dir = RunDir(config.run.dir());
  context.log = &log;

  FinetuneRecord record{source.describe(config), counts(split), dataset->class_names(), {}, {}, {}};
  for (const int64_t seed : options.seeds()) {
    record.seeds.push_back(finetune_seed(context, split, options, seed));
    const auto& r = record.seeds.back();
    log.info("fine-tune seed " + std::to_string(seed) + " on " + std::to_string(r.labelled) +
             " labels, epoch " + std::to_string(r.best_epoch) + " of " +
             std::to_string(r.epochs_run) + ": test " + metrics_line(r.test));
  }
  record.summarise();
  std::ofstream csv(RunDir(config.run.dir()).finetune_csv(), std::ios::trunc);
  csv << "seed,labelled,epochs_run,best_epoch," << metrics_csv_header() << '\n';
  for (const auto& r : record.seeds)
    csv << r.seed << ',' << r.labelled << ',' << r.epochs_run << ',' << r.best_epoch << ','
        << metrics_csv(r.test) << '\n';
  write_json(RunDir(config.run.dir()).finetune_json(), to_json(record));
  log.info("fine-tune over " + std::to_string(record.seeds.size()) + " seeds: test top-1 " +
           percent(record.mean.top1) + " +- " + percent(record.std.top1));
  refresh_report(config, log);
  return record.seeds;
}

std::string export_encoder(const RunConfig& config, const EncoderSource& source,
                           const std::string& out, RunLog& log) {
  start_command(config, log);
  require_encoder(config, source);
  const auto dataset = open_dataset(config, false, log);
  const auto method = load_method(config, source, dataset->channels(), log);
  auto encoder = method->encoder();
  const std::string path = out.empty() ? RunDir(config.run.dir()).encoder() : out;
  save_state_dict(path, *encoder);

  nlohmann::ordered_json json;
  json["format"] = "pretext-encoder/1";
  json["weights"] = fs::path(path).filename().string();
  json["source"] = source.describe(config);
  json["method"] = config.method_name;
  auto& backbone = json["backbone"];
  backbone["name"] = config.backbone_name;
  JsonFields fields(backbone);
  config.backbone->visit_fields(fields);
  backbone["in_channels"] = dataset->channels();
  backbone["feature_dim"] = encoder->feature_dim();
  auto& pre = json["preprocessing"];
  pre["bands"] = config.data.bands();
  pre["value_scale"] = config.data.value_scale();
  pre["image_size"] = config.data.image_size();
  pre["mean"] = config.augment.mean();
  pre["std"] = config.augment.std();
  const auto& augment = config.augment;
  if (config.data.kind() == "rasters") {
    pre["band_names"] = config.data.band_names();
    pre["ground_sample_distance"] = config.data.ground_sample_distance();
    pre["steps"] =
        "read the bands (band_names by description, else bands by number; empty: all) of a "
        "window of image_size pixels at ground_sample_distance map units per pixel (0: the "
        "file's own), apply each band's scale and offset, set nodata / masked pixels to the "
        "band's mean, then (x - mean) / std per band (mean and std measured on the pretraining "
        "data)";
  } else if (augment.window() == "none") {
    pre["steps"] =
        "read the bands (1-based; empty: all), multiply by value_scale (0: divide by the data "
        "type's full scale, 255 for uint8), resample to image_size, then (x - mean) / std per "
        "band";
  } else {
    pre["slab"] = config.data.slab();
    auto& window = pre["window"];
    window["mode"] = augment.window();
    if (augment.window() == "presets") {
      for (size_t i = 0; i < augment.window_levels().size(); ++i)
        window["presets"].push_back(
            {{"level", augment.window_levels()[i]}, {"width", augment.window_widths()[i]}});
    } else {
      window["percentiles"] = augment.window_percentiles();
    }
    pre["steps"] =
        "decode the slice (DICOM: rescale slope and intercept applied, Hounsfield units for CT; "
        "MONOCHROME1 inverted), stack slab adjacent slices as channels, resample to image_size, "
        "window: x = clip((x - (level - width / 2)) / width, 0, 1) with the first preset (or "
        "level and width from the image's percentiles), then (x - mean) / std";
  }
  const std::string sidecar = fs::path(path).replace_extension(".json").string();
  write_json(sidecar, json);
  log.info("encoder (" + std::to_string(encoder->parameters().size()) + " tensors, " +
           std::to_string(encoder->feature_dim()) + "-d features) written to " + path +
           ", preprocessing to " + sidecar);
  return path;
}

}  // namespace pretext::pipelines
