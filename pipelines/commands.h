#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "methods/backbone.h"
#include "methods/method.h"
#include "pipelines/finetune.h"
#include "pipelines/knn.h"
#include "pipelines/probe.h"
#include "pipelines/run_config.h"
#include "pipelines/run_log.h"
#include "pipelines/trainer.h"

namespace pretext::pipelines {

/// Where an evaluated or exported encoder's weights come from: a pretext checkpoint (default: the
/// run directory's), a state dict in torchvision / timm layout (`init_from`, e.g. saved from
/// Python), or a fresh seeded initialisation (`random_init`).
struct EncoderSource {
  std::string checkpoint;
  std::string init_from;
  bool random_init = false;
  /// "random-init", or the weights file, for result files.
  std::string describe(const RunConfig& config) const;
};

/// `pretext pretrain`: trains the config's method on its data in its run directory (resolved
/// config, run.log, metrics.csv, checkpoint.pt). Ctrl-C stops after the current step with a
/// checkpoint that `resume` continues from. `init_from` starts the encoder from a state dict.
TrainResult pretrain(const RunConfig& config, bool resume, const std::string& init_from,
                     RunLog& log);

/// `pretext extract`: features of every image of the config's data set to `out` (default
/// run.dir/features.pt). Returns the path written.
std::string extract(const RunConfig& config, const EncoderSource& source, const std::string& out,
                    RunLog& log);

/// `pretext knn`: k-NN of the encoder (or of saved `features`), knn.csv and knn.json in the run
/// directory.
std::vector<KnnScore> knn(const RunConfig& config, const EncoderSource& source,
                          const std::string& features, RunLog& log);

/// `pretext probe`: linear probe or LR / weight-decay sweep on frozen features; probe.csv,
/// probe.svg and probe.json in the run directory.
ProbeResult probe(const RunConfig& config, const EncoderSource& source, const std::string& features,
                  RunLog& log);

/// `pretext finetune`: few-label fine-tuning for every seed; finetune.csv and finetune.json.
std::vector<FinetuneSeedResult> finetune(const RunConfig& config, const EncoderSource& source,
                                         RunLog& log);

/// `pretext export`: the encoder's state dict to `out` (default run.dir/encoder.pt) and its
/// preprocessing beside it (same name, .json). Returns the state dict's path.
std::string export_encoder(const RunConfig& config, const EncoderSource& source,
                           const std::string& out, RunLog& log);

/// k-NN of `encoder` on the config's labelled data (the part shared by `knn` and the demo).
std::vector<KnnScore> evaluate_knn(const RunConfig& config, methods::BackboneImpl& encoder,
                                   std::shared_ptr<const io::Dataset> dataset);

/// The config's data set, bands checked against the normalisation: whole 2D images, or the slices
/// of DICOM series and volumes. `pretraining` applies data.split and background rejection.
/// Throws InputError / ConfigError.
std::shared_ptr<io::Dataset> open_dataset(const RunConfig& config, bool pretraining, RunLog& log);

/// The config's method on the run device with the source's encoder weights. Throws InputError
/// naming the checkpoint or state dict that is missing or does not fit.
std::shared_ptr<methods::MethodImpl> load_method(const RunConfig& config,
                                                 const EncoderSource& source, int64_t channels,
                                                 RunLog& log);

/// Threads, the BLAS check and the device, logged once per command.
void prepare_compute(const RunConfig& config, RunLog& log);

}  // namespace pretext::pipelines
