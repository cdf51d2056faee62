#include "pipelines/commands.h"

#include <csignal>
#include <filesystem>
#include <fstream>

#include <torch/types.h>

#include "base/errors.h"
#include "pipelines/checkpoint.h"
#include "pipelines/system.h"

namespace pretext::pipelines {
namespace fs = std::filesystem;
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_interrupt(int) { g_interrupted = 1; }

void make_run_dir(const std::string& dir) {
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) throw InputError(dir + ": cannot create the run directory (" + error.message() + ")");
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  if (!out) throw InputError(path + ": cannot write");
}

torch::Tensor labels_of(const io::ImageDataset& dataset, const std::vector<int64_t>& indices) {
  auto labels = torch::empty({static_cast<int64_t>(indices.size())}, torch::kInt64);
  for (size_t i = 0; i < indices.size(); ++i) labels[i] = dataset.label_of(indices[i]);
  return labels;
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

std::shared_ptr<io::ImageDataset> open_dataset(const RunConfig& config, bool use_split,
                                               RunLog& log) {
  auto catalog = io::Catalog::from_path(config.data.root());
  if (catalog.skipped_files() > 0)
    log.info(config.data.root() + ": skipped " + std::to_string(catalog.skipped_files()) +
             " files that are not images");
  if (use_split && !config.data.split().empty()) {
    catalog = catalog.with_split(config.data.split());
    if (catalog.size() == 0)
      throw InputError(config.data.root() + ": no images in split '" + config.data.split() + "'");
  }
  auto dataset = std::make_shared<io::ImageDataset>(catalog, config.data.dataset_options());
  config.check_bands(dataset->channels());
  log.info(config.data.root() + ": " + std::to_string(dataset->size()) + " images, " +
           std::to_string(dataset->channels()) + " bands, " +
           std::to_string(dataset->class_names().size()) + " labels");
  return dataset;
}

TrainResult pretrain(const RunConfig& config, bool resume, RunLog& log) {
  const std::string& dir = config.run.dir();
  make_run_dir(dir);
  log.open(dir + "/run.log");
  prepare_compute(config, log);
  auto dataset = open_dataset(config, true, log);
  const std::string resolved = config.file->resolved_yaml();
  auto method = config.build_method(dataset->channels());
  TrainerContext context;
  context.run_dir = dir;
  context.seed = static_cast<uint64_t>(config.run.seed());
  context.device = torch::Device(config.run.device());
  context.config_text = resolved;
  context.log = &log;
  Trainer trainer(method, config.train, context);
  if (resume) trainer.resume();
  write_text(dir + "/config.yaml", resolved);
  log.info(std::string(resume ? "resuming " : "pretraining ") + config.method_name + " on " +
           config.backbone_name + " in " + dir);

  g_interrupted = 0;
  auto previous = std::signal(SIGINT, on_interrupt);
  const auto result = trainer.fit(
      dataset, domains::TwoViewAugment(config.augment),
      io::LoaderOptions().workers(config.data.workers()).prefetch(config.data.prefetch()),
      [](int64_t) { return g_interrupted != 0; });
  std::signal(SIGINT, previous);
  if (result.interrupted) log.info("interrupted; continue with --resume");
  return result;
}

std::vector<KnnScore> evaluate_knn(const RunConfig& config, methods::BackboneImpl& encoder,
                                   std::shared_ptr<const io::ImageDataset> dataset) {
  const auto split = knn_split(*dataset, config.eval, static_cast<uint64_t>(config.run.seed()));
  const torch::Device device(config.run.device());
  const auto features = [&](const std::vector<int64_t>& indices) {
    return extract_features(encoder, dataset, indices, config.augment.mean(), config.augment.std(),
                            device, config.eval.batch_size(), config.data.workers());
  };
  const auto bank = features(split.bank);
  const auto queries = features(split.queries);
  return knn_top1(bank, labels_of(*dataset, split.bank), queries,
                  labels_of(*dataset, split.queries), config.eval,
                  static_cast<int64_t>(dataset->class_names().size()));
}

std::vector<KnnScore> knn(const RunConfig& config, const std::string& checkpoint, bool random_init,
                          RunLog& log) {
  const std::string& dir = config.run.dir();
  const std::string weights = checkpoint.empty() ? dir + "/checkpoint.pt" : checkpoint;
  if (!random_init && !fs::is_regular_file(weights))
    throw InputError(weights + ": no checkpoint here (pretrain first, or pass --checkpoint)");
  make_run_dir(dir);
  log.open(dir + "/run.log");
  prepare_compute(config, log);
  auto dataset = open_dataset(config, false, log);
  auto method = config.build_method(dataset->channels());
  const torch::Device device(config.run.device());
  method->to(device);
  if (!random_init) load_checkpoint(weights, *method, nullptr, device);
  const auto scores = evaluate_knn(config, *method->encoder(), dataset);
  std::ofstream csv(dir + "/knn.csv", std::ios::trunc);
  csv << "encoder,k,top1\n";
  for (const auto& s : scores) {
    csv << (random_init ? "random-init" : weights) << ',' << s.k << ',' << s.top1 << '\n';
    log.info("k-NN k=" + std::to_string(s.k) + " top-1 " + std::to_string(100.0 * s.top1) + "%");
  }
  return scores;
}

}  // namespace pretext::pipelines
