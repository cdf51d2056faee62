#include "pipelines/encoder_source.h"

#include <filesystem>

#include <torch/types.h>

#include "base/errors.h"
#include "pipelines/checkpoint.h"
#include "pipelines/export.h"
#include "pipelines/run_dir.h"

namespace pretext::pipelines {
namespace {

std::string checkpoint_path(const RunConfig& config, const EncoderSource& source) {
  return source.checkpoint.empty() ? RunDir(config.run.dir()).checkpoint() : source.checkpoint;
}

}  // namespace

std::string EncoderSource::describe(const RunConfig& config) const {
  if (!init_from.empty()) return init_from;
  return random_init ? "random-init" : checkpoint_path(config, *this);
}

void require_encoder(const RunConfig& config, const EncoderSource& source) {
  if (source.random_init) return;
  const auto path = source.init_from.empty() ? checkpoint_path(config, source) : source.init_from;
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error))
    throw InputError(path + (source.init_from.empty()
                                 ? ": no checkpoint here (pretrain first, pass --checkpoint, "
                                   "--init-from a state dict, or --random-init)"
                                 : ": no such file"));
}

void init_encoder_from(const std::string& path, methods::MethodImpl& method, RunLog& log) {
  const auto skipped = load_state_dict(path, *method.encoder());
  method.sync_encoder_copies();
  log.info("encoder initialised from " + path +
           (skipped.empty() ? ""
                            : " (skipped " + std::to_string(skipped.size()) +
                                  " classifier-head tensors, e.g. " + skipped[0] + ")"));
}

std::shared_ptr<methods::MethodImpl> load_method(const RunConfig& config,
                                                 const EncoderSource& source, int64_t bands,
                                                 RunLog& log) {
  require_encoder(config, source);
  auto method = config.build_method(bands);
  if (!source.init_from.empty())
    init_encoder_from(source.init_from, *method, log);
  else if (!source.random_init)
    load_checkpoint(checkpoint_path(config, source), *method, nullptr, torch::kCPU);
  method->to(torch::Device(config.run.device()));
  return method;
}

}  // namespace pretext::pipelines
