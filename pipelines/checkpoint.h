#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include "pipelines/precision.h"

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace pretext::pipelines {

/// Where a run stands: enough, with the model and optimiser, to continue exactly.
struct TrainState {
  int64_t step = 0;            ///< optimiser steps taken
  int64_t epoch = 0;           ///< epoch in progress
  int64_t batch_in_epoch = 0;  ///< batches of that epoch already consumed
  LossScale loss_scale = {};   ///< run.precision fp16's loss scale
  /// Data-parallel ranks that trained it (1 in checkpoints from before data parallelism), for the
  /// log: a resume on any number of ranks of the same global batch continues the same run.
  int64_t world_size = 1;
};

/// Calls `write(temporary)` to write a file next to `path`, flushes it to disk and renames it over
/// `path`, so a crash leaves either the old or the new file, never half of one. Throws InputError
/// naming the file.
void replace_file(const std::string& path, const std::function<void(const std::string&)>& write);
/// `bytes` written to `path` with replace_file.
void write_file(const std::string& path, std::string_view bytes);

/// `value` pickled the way Python's torch.save does (a zip archive torch.load opens), written with
/// replace_file.
void save_pickle(const std::string& path, const c10::IValue& value);
/// What save_pickle or Python's torch.save wrote. Throws InputError naming the file, saying it is
/// not `what` when it cannot be unpickled.
c10::IValue load_pickle(const std::string& path, const std::string& what);

/// Writes model parameters and buffers, optimiser state, the train state and the resolved config
/// to `path` atomically: a temporary file in the same folder, flushed to disk, then renamed over
/// `path`, so a crash leaves either the old or the new checkpoint, never half of one.
void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const TrainState& state,
                     const std::string& config_text);

/// The resolved config a checkpoint was written with. Throws InputError naming the file.
std::string checkpoint_config(const std::string& path);

/// Loads what `save_checkpoint` wrote into `model` (and `optimizer` when given), tensors placed on
/// `device`. Returns the train state; `config_text` receives the config it was written with.
/// Throws InputError naming the file for a missing, corrupt or mismatching checkpoint.
TrainState load_checkpoint(const std::string& path, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer, const c10::Device& device,
                           std::string* config_text = nullptr);

}  // namespace pretext::pipelines
