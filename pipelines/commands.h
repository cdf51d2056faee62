#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "methods/backbone.h"
#include "pipelines/knn.h"
#include "pipelines/run_config.h"
#include "pipelines/run_log.h"
#include "pipelines/trainer.h"

namespace pretext::pipelines {

/// `pretext pretrain`: trains the config's method on its data in its run directory (resolved
/// config, run.log, metrics.csv, checkpoint.pt). Ctrl-C stops after the current step with a
/// checkpoint that `resume` continues from.
TrainResult pretrain(const RunConfig& config, bool resume, RunLog& log);

/// `pretext knn`: k-NN top-1 of the config's encoder, loaded from `checkpoint` (default: the
/// run directory's), or freshly initialised with `random_init`. Writes knn.csv to the run dir.
std::vector<KnnScore> knn(const RunConfig& config, const std::string& checkpoint, bool random_init,
                          RunLog& log);

/// k-NN of `encoder` on the config's labelled data (the part shared by `knn` and the demo).
std::vector<KnnScore> evaluate_knn(const RunConfig& config, methods::BackboneImpl& encoder,
                                   std::shared_ptr<const io::ImageDataset> dataset);

/// The config's data set (data.split applied when `use_split`), bands checked against the
/// normalisation. Throws InputError / ConfigError.
std::shared_ptr<io::ImageDataset> open_dataset(const RunConfig& config, bool use_split,
                                               RunLog& log);

/// Threads, the BLAS check and the device, logged once per command.
void prepare_compute(const RunConfig& config, RunLog& log);

}  // namespace pretext::pipelines
