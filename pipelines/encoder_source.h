#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "methods/backbone.h"
#include "methods/method.h"
#include "pipelines/run_config.h"
#include "pipelines/run_log.h"

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

/// Fails before any data is read when the source names no file. Throws InputError.
void require_encoder(const RunConfig& config, const EncoderSource& source);

/// The config's method on the run device for images of `bands` bands, with the source's encoder
/// weights. Throws InputError naming the checkpoint or state dict that is missing or does not
/// fit.
std::shared_ptr<methods::MethodImpl> load_method(const RunConfig& config,
                                                 const EncoderSource& source, int64_t bands,
                                                 RunLog& log);

/// Loads a state dict (torchvision / timm layout) into the method's encoder, makes every network
/// that starts as its copy (teacher, key or target encoder) that copy again, and logs what it
/// skipped.
void init_encoder_from(const std::string& path, methods::MethodImpl& method, RunLog& log);

}  // namespace pretext::pipelines
