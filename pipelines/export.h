#pragma once

#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "methods/backbone.h"

namespace pretext::pipelines {

/// Writes every parameter and buffer of `module` (CPU, contiguous, float as trained) under the
/// module's own names, atomically, as a dict that Python's torch.load opens and a torchvision /
/// timm model of the same layout takes with load_state_dict(strict=True).
void save_state_dict(const std::string& path, torch::nn::Module& module);

/// Loads a state dict into `module`: one written by save_state_dict, or by Python's
/// torch.save(model.state_dict()). Accepted beside the plain dict: a {"state_dict": ...} or
/// {"model": ...} wrapper and DataParallel's "module." prefix. Keys of a classifier head (fc.*,
/// head.*) that `module` lacks are skipped and returned. Every parameter and buffer of `module`
/// must be present with its shape; anything else is an error. Throws InputError naming the file
/// and the key.
std::vector<std::string> load_state_dict(const std::string& path, methods::BackboneImpl& module);

}  // namespace pretext::pipelines
