#pragma once

#include "pipelines/data.h"
#include "pipelines/run_config.h"
#include "pipelines/run_log.h"

namespace pretext::pipelines {

/// Draws what the report shows of pretraining, from the data pretraining opened and the run
/// directory's checkpoint: views.png (the first images as read, then two augmented views of each,
/// of two dates in a temporal run), for a ViT attention.png (its last-block attention over them)
/// with one overlay per image in attention/, and figures.json saying what each shows. The report
/// then never opens the data. Throws InputError naming a file it cannot write.
void write_figures(const RunConfig& config, const PreparedData& data, RunLog& log);

}  // namespace pretext::pipelines
