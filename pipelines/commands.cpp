#include "pipelines/commands.h"

#include <csignal>

#include <torch/types.h>

#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "pipelines/checkpoint.h"
#include "pipelines/export.h"
#include "pipelines/figures.h"
#include "pipelines/process_group.h"
#include "pipelines/report.h"
#include "pipelines/results.h"
#include "pipelines/run_dir.h"
#include "pipelines/sidecar.h"
#include "pipelines/system.h"
#include "pipelines/world.h"

namespace pretext::pipelines {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

void on_interrupt(int) { g_interrupted = 1; }

void prepare_compute(const RunConfig& config, const World& world, RunLog& log) {
  const int64_t threads = configure_threads(config.run.threads(), world.local_world_size);
  const torch::Device device(config.run.device());
  if (device.is_cuda()) configure_cuda(config.run.tf32());
  const auto blas = measure_blas();
  log.file_only(torch_summary());
  log.file_only(
      "threads " + std::to_string(threads) + ", device " + config.run.device() + ", precision " +
      name_of(config.run.precision()) +
      (device.is_cuda() ? std::string(", tf32 ") + (config.run.tf32() ? "on" : "off") : "") +
      ", BLAS " + (blas.implementation.empty() ? "" : blas.implementation + " ") +
      std::to_string(static_cast<int>(blas.gflops)) + " GFLOP/s (" + blas.library + ")");
  if (const auto warning = blas_warning(blas); !warning.empty()) log.warn(warning);
}

/// The method pretraining trains, checked against the dates each example holds.
std::shared_ptr<methods::MethodImpl> method_for(const RunConfig& config, const PreparedData& data) {
  auto method = config.build_method(data.bands());
  const int64_t frames = data.augment.frames();
  if (frames > 1 && !method->joint_frames() && method->view_count() != frames)
    throw ConfigError(config.file->where("data", "frames") + ": " + std::to_string(frames) +
                      " dates per example, but " + config.method_name + " takes " +
                      std::to_string(method->view_count()) + " views (one per date)");
  return method;
}

/// Pretraining's figures for the report; a failure costs the figures, not the training.
void refresh_figures(const RunConfig& config, const PreparedData& data, RunLog& log) {
  try {
    write_figures(config, data, log);
  } catch (const InputError& e) {
    log.warn(std::string("the report's figures not updated: ") + e.what());
  } catch (const ConfigError& e) {
    // BEiT's tokenizer checkpoint gone since the run started.
    log.warn(std::string("the report's figures not updated: ") + e.what());
  }
}

}  // namespace

void start_command(const RunConfig& config, RunLog& log, const World& world) {
  const RunDir run(config.run.dir());
  run.create();
  log.open(run.log());
  prepare_compute(config, world, log);
}

TrainResult pretrain(const RunConfig& config, bool resume, const std::string& init_from,
                     RunLog& log) {
  const RunDir run(config.run.dir());
  const World world = world_from_process_environment();
  if (world.distributed()) log.follow_as_rank(world.rank);
  start_command(config, log, world);
  const std::string resolved = config.file->resolved_yaml();
  std::unique_ptr<ProcessGroup> group;
  if (world.distributed()) {
    if (torch::Device(config.run.device()).is_cuda())
      throw ConfigError(config.file->where("run", "device") + ": data-parallel training on " +
                        config.run.device() +
                        " needs NCCL, which this build does not use; "
                        "several ranks train on the CPU (Gloo)");
    group = std::make_unique<ProcessGroup>(world, std::chrono::seconds(config.run.timeout_s()));
    group->check_same("config", "world size " + std::to_string(world.world_size) + "\n" +
                                    (resume ? "resume\n" : "") + resolved);
  }
  const auto data = open_data(config, DataUse::kPretraining, log);
  auto method = method_for(config, data);
  if (world.distributed())
    if (const auto bad =
            method->data_parallel_mismatch(world.world_size, config.train.batch_size()))
      throw ConfigError(config.file->where("method", bad->first) + ": " + bad->second);
  if (!init_from.empty() && !resume) init_encoder_from(init_from, *method, log);
  TrainerContext context;
  context.run_dir = run;
  context.seed = static_cast<uint64_t>(config.run.seed());
  context.device = torch::Device(config.run.device());
  context.precision = config.run.precision();
  // Checkpoints compare configs by the global batch, so that a run resumes on any number of
  // ranks that splits it: the data order, views and method state depend on it alone.
  context.config_text = config.file->resolved_yaml_with(
      "train", "batch_size", world.world_size * config.train.batch_size());
  context.log = &log;
  context.group = group.get();
  context.sync_batch_norm = config.sync_batch_norm;
  Trainer trainer(method, config.train, context);
  if (resume) trainer.resume();
  if (world.rank == 0) write_file(run.config(), resolved);
  log.info(std::string(resume ? "resuming " : "pretraining ") + config.method_name + " on " +
           config.backbone_name + " in " + run.path() +
           (world.distributed() ? " on " + std::to_string(world.world_size) + " ranks (" +
                                      world.launcher + "), global batch " +
                                      std::to_string(world.world_size * config.train.batch_size())
                                : ""));

  g_interrupted = 0;
  auto previous = std::signal(SIGINT, on_interrupt);
  const auto result = trainer.fit(
      data.dataset, domains::ViewAugment(data.augment),
      io::LoaderOptions().workers(config.data.workers()).prefetch(config.data.prefetch()),
      [](int64_t) { return g_interrupted != 0; });
  std::signal(SIGINT, previous);
  if (result.interrupted) log.info("interrupted; continue with --resume");
  if (world.rank == 0) {
    refresh_figures(config, data, log);
    refresh_report(config, log);
  }
  return result;
}

std::string extract(const RunConfig& config, const EncoderSource& source, const std::string& out,
                    RunLog& log) {
  start_command(config, log);
  require_encoder(config, source);
  const auto data = open_data(config, DataUse::kEvaluation, log);
  const auto method = load_method(config, source, data.bands(), log);
  const auto set = extract_feature_set(*method->encoder(), data.dataset, data.augment,
                                       torch::Device(config.run.device()), config.eval.batch_size(),
                                       config.data.workers(), config.eval.group_by());
  const std::string path = out.empty() ? RunDir(config.run.dir()).features() : out;
  save_features(path, set);
  log.info("features of " + std::to_string(set.size()) + " images (" +
           std::to_string(set.features.size(1)) + " dimensions) from " + source.describe(config) +
           " written to " + path);
  return path;
}

std::string export_encoder(const RunConfig& config, const EncoderSource& source,
                           const std::string& out, RunLog& log) {
  start_command(config, log);
  require_encoder(config, source);
  const auto data = open_data(config, DataUse::kEvaluation, log);
  const auto method = load_method(config, source, data.bands(), log);
  auto encoder = method->encoder();
  const std::string path = out.empty() ? RunDir(config.run.dir()).encoder() : out;
  save_state_dict(path, *encoder);
  const std::string sidecar = sidecar_path(path);
  save_json(sidecar, encoder_sidecar(config, data, source, *encoder, path));
  log.info("encoder (" + std::to_string(encoder->parameters().size()) + " tensors, " +
           std::to_string(encoder->feature_dim()) + "-d features) written to " + path +
           ", preprocessing to " + sidecar);
  return path;
}

}  // namespace pretext::pipelines
