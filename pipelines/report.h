#pragma once

#include <string>

#include "pipelines/run_config.h"
#include "pipelines/run_log.h"

namespace pretext::pipelines {

/// Writes run.dir/report.html and returns its path: one self-contained page (SVG and PNG inline,
/// readable offline) of what the run directory holds: the resolved config, loss and learning-rate
/// curves, k-NN, linear probe (with the sweep plot) and fine-tune results with confusion
/// matrices, and pretraining's figures (augmented views of the first images and, for a ViT, its
/// last-block attention over them). It reads only the run directory, never the data. Sections
/// whose command has not run say so.
std::string write_report(const RunConfig& config);

/// write_report, after every command that writes results; a failure costs the report (a warning
/// in the log), not the results already written.
void refresh_report(const RunConfig& config, RunLog& log);

}  // namespace pretext::pipelines
