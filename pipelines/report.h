#pragma once

#include <string>

#include "pipelines/run_config.h"
#include "pipelines/run_log.h"

namespace pretext::pipelines {

/// Writes run.dir/report.html and returns its path: one self-contained page (SVG and PNG inline,
/// readable offline) of what the run directory holds: the resolved config, loss and learning-rate
/// curves, k-NN, linear probe (with the sweep plot) and fine-tune results with confusion
/// matrices, a grid of augmented views of the first images of the data set and, for a ViT, its
/// last-block attention over them. Sections whose
/// command has not run say so. Every command that writes results refreshes it.
std::string write_report(const RunConfig& config, RunLog& log);

}  // namespace pretext::pipelines
