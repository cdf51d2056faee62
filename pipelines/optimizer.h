#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

namespace pretext::pipelines {

/// Parameters that share a learning rate and a weight decay.
struct ParameterGroup {
  std::vector<torch::Tensor> parameters;
  double lr = 0.0;
  double weight_decay = 0.0;
};

/// The trainable parameters of `module` in two groups at `lr`: weights with `weight_decay`, and
/// biases and normalisation weights (tensors of one dimension), which are never decayed.
std::vector<ParameterGroup> decay_groups(torch::nn::Module& module, double lr, double weight_decay);

/// "sgd" (with `momentum`), "adam" (L2 penalty in the gradient) or "adamw" (decoupled decay).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name,
                                                        const std::vector<ParameterGroup>& groups,
                                                        double momentum);

}  // namespace pretext::pipelines
