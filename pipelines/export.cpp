#include "pipelines/export.h"

#include <map>

#include <torch/types.h>

#include "base/errors.h"
#include "pipelines/checkpoint.h"

namespace pretext::pipelines {

void save_state_dict(const std::string& path, torch::nn::Module& module) {
  c10::Dict<std::string, torch::Tensor> dict;
  const auto add = [&](const std::string& name, const torch::Tensor& t) {
    // Channels-last weights are contiguous copies in the default layout, which Python expects.
    dict.insert(name, t.detach().to(torch::kCPU).contiguous());
  };
  for (const auto& item : module.named_parameters()) add(item.key(), item.value());
  for (const auto& item : module.named_buffers()) add(item.key(), item.value());
  save_pickle(path, c10::IValue(dict));
}

namespace {

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

/// The tensors of a state dict file by name, unwrapped.
std::map<std::string, torch::Tensor> read_tensors(const std::string& path) {
  const auto value = load_pickle(path, "a state dict saved by torch.save or pretext export");
  if (!value.isGenericDict()) throw InputError(path + ": holds no dict of tensors");
  auto dict = value.toGenericDict();
  for (const char* wrapper : {"state_dict", "model"})
    if (dict.contains(wrapper) && dict.at(wrapper).isGenericDict())
      dict = dict.at(wrapper).toGenericDict();
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& entry : dict) {
    if (!entry.key().isString() || !entry.value().isTensor())
      throw InputError(path + ": an entry is not a named tensor");
    std::string name = entry.key().toStringRef();
    if (starts_with(name, "module.")) name = name.substr(7);
    tensors[name] = entry.value().toTensor();
  }
  return tensors;
}

}  // namespace

std::vector<std::string> load_state_dict(const std::string& path, methods::BackboneImpl& module) {
  auto tensors = read_tensors(path);
  std::map<std::string, torch::Tensor> targets;
  for (const auto& item : module.named_parameters()) targets[item.key()] = item.value();
  for (const auto& item : module.named_buffers()) targets[item.key()] = item.value();
  std::vector<std::string> skipped;
  for (const auto& [name, tensor] : tensors) {
    if (targets.count(name)) continue;
    // Classifier heads, and the mask token DINOv2 and iBOT train with.
    if (starts_with(name, "fc.") || starts_with(name, "head.") || name == "mask_token") {
      skipped.push_back(name);
      continue;
    }
    throw InputError(path + ": '" + name +
                     "' is not a parameter of this encoder (is the config's backbone the one these "
                     "weights were saved from?)");
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    const auto found = tensors.find(name);
    if (found == tensors.end())
      throw InputError(path + ": '" + name + "' is missing (" + std::to_string(tensors.size()) +
                       " tensors in the file)");
    auto saved = found->second;
    if (saved.sizes() != target.sizes()) {
      if (const auto fitted = module.fitted(name, saved); fitted.defined()) saved = fitted;
    }
    if (saved.sizes() != target.sizes())
      throw InputError(path + ": '" + name + "' has shape " + c10::str(found->second.sizes()) +
                       ", the encoder's is " + c10::str(target.sizes()));
    target.copy_(saved);
  }
  return skipped;
}

}  // namespace pretext::pipelines
