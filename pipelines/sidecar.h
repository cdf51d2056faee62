#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

#include "methods/backbone.h"
#include "pipelines/data.h"
#include "pipelines/encoder_source.h"
#include "pipelines/run_config.h"

namespace pretext::pipelines {

/// What `pretext export` writes beside the encoder's state dict `weights` (same name, .json):
/// format "pretext-encoder/1", the weights file, where they came from, the method, the backbone
/// and its fields, and the preprocessing a Python user applies before the encoder (bands, value
/// scale, size, window, the mean and std the data was normalised with), with its steps in words.
/// Where the sidecar of the state dict `weights` goes: the same name with .json.
std::string sidecar_path(const std::string& weights);

nlohmann::ordered_json encoder_sidecar(const RunConfig& config, const PreparedData& data,
                                       const EncoderSource& source, methods::BackboneImpl& encoder,
                                       const std::string& weights);

}  // namespace pretext::pipelines
