#pragma once

// The commands of the pretext binary, one function each. Every command opens its run directory
// and log (start_command), opens the data once (open_data), writes its results through RunDir and
// the result records, and refreshes the report from the run directory.

#include <memory>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "methods/backbone.h"
#include "pipelines/data.h"
#include "pipelines/encoder_source.h"
#include "pipelines/finetune.h"
#include "pipelines/knn.h"
#include "pipelines/probe.h"
#include "pipelines/run_config.h"
#include "pipelines/run_log.h"
#include "pipelines/trainer.h"
#include "pipelines/world.h"

namespace pretext::pipelines {

/// Creates the run directory, opens its run.log, and sets up threads and the device (logging
/// them and the BLAS check; threads shared among the ranks `world` has on this machine). Every
/// command starts here.
void start_command(const RunConfig& config, RunLog& log, const World& world = World{});

/// `pretext pretrain`: trains the config's method on its data in its run directory (resolved
/// config, run.log, metrics.csv, checkpoint.pt, the report's figures). Ctrl-C stops after the
/// current step with a checkpoint that `resume` continues from. `init_from` starts the encoder
/// (and every network that starts as its copy) from a state dict.
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

/// k-NN of `encoder` on opened labelled data (the part shared by `knn` and the demo).
std::vector<KnnScore> evaluate_knn(const RunConfig& config, methods::BackboneImpl& encoder,
                                   const PreparedData& data, RunLog& log);

}  // namespace pretext::pipelines
