#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "pipelines/optimizer_kind.h"

namespace pretext::pipelines {

/// Parameters that share a learning rate and a weight decay.
struct ParameterGroup {
  std::vector<torch::Tensor> parameters;
  double lr = 0.0;
  double weight_decay = 0.0;
};

/// Whether weight decay applies to the parameter `name`: not to biases and normalisation weights
/// (tensors of one dimension), nor to a ViT's class token and position embedding (timm's
/// no_weight_decay).
bool decays(const std::string& name, const torch::Tensor& parameter);

/// The trainable parameters of `module` in two groups at `lr`: those that `decays` with
/// `weight_decay`, the others without.
std::vector<ParameterGroup> decay_groups(torch::nn::Module& module, double lr, double weight_decay);

/// The optimiser `kind` over `groups`; SGD with `momentum`.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(OptimizerKind kind,
                                                        const std::vector<ParameterGroup>& groups,
                                                        double momentum);

}  // namespace pretext::pipelines
