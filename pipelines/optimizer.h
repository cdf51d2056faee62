#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/sgd.h>

#include "pipelines/optimizer_kind.h"

namespace pretext::pipelines {

/// Parameters that share a learning rate and a weight decay.
struct ParameterGroup {
  std::vector<torch::Tensor> parameters;
  double lr = 0.0;
  double weight_decay = 0.0;
  /// False: the group keeps `lr` throughout instead of following the learning-rate schedule
  /// (SimSiam's predictor, the reference's --fix-pred-lr).
  bool scheduled = true;
};

/// Whether weight decay applies to the parameter `name`: not to biases and normalisation weights
/// (tensors of one dimension), nor to a ViT's class token and position embedding (timm's
/// no_weight_decay).
bool decays(const std::string& name, const torch::Tensor& parameter);

/// The trainable parameters of `module` in groups at `lr`: those that `decays` with
/// `weight_decay`, the others without; each split again into those that follow the schedule and
/// those among `constant_lr` that do not. Groups left empty are dropped.
std::vector<ParameterGroup> decay_groups(torch::nn::Module& module, double lr, double weight_decay,
                                         const std::vector<torch::Tensor>& constant_lr = {});

/// The weight decay of one parameter group of an optimiser made by make_optimizer, and setting it.
double weight_decay_of(const torch::optim::OptimizerParamGroup& group, OptimizerKind kind);
void set_weight_decay(torch::optim::OptimizerParamGroup& group, OptimizerKind kind, double decay);

/// Scales each parameter's gradient so that its norm is at most `max_norm` (DINO's
/// utils.clip_gradients: factor max_norm / (norm + 1e-6) where below 1), without a host sync.
void clip_gradients_per_parameter(const std::vector<torch::Tensor>& parameters, double max_norm);
/// Scales all gradients together so that their joint L2 norm is at most `max_norm`, as
/// torch.nn.utils.clip_grad_norm_ (coefficient max_norm / (norm + 1e-6), at most 1), without
/// reading the norm on the host: no wait for the device.
void clip_gradients_globally(const std::vector<torch::Tensor>& parameters, double max_norm);

/// Adam's and AdamW's coefficients of the running means of the gradient and its square.
struct Betas {
  double first = 0.9, second = 0.999;
};

/// LARS as the SimCLR, BYOL and MAE references write it (You et al. 2017): SGD with momentum whose
/// step for each weight tensor is (g + wd w) x trust_coefficient ||w|| / ||g + wd w|| (no scaling
/// where either norm is 0). Tensors of one dimension (biases, normalisation weights) take the plain
/// SGD step, as the references exclude them from the adaptation (and decay_groups from the decay).
/// A ViT's class token and position embedding are scaled, as in MAE's lars.py, but not decayed
/// (decay_groups spares them). The momentum buffer is PyTorch's (buf = m buf + step,
/// w -= lr buf, as MAE's and BYOL's); SimCLR's TF code keeps lr inside the buffer, which differs
/// while the rate changes (through warm-up and the cosine). solo-learn and lightly divide by
/// ||g|| + wd ||w|| instead, and solo-learn's CIFAR recipes cap the scaled rate at lr (clip_lr).
class Lars : public torch::optim::SGD {
 public:
  /// `defaults` and every group's options: SGDOptions with the momentum and weight decay.
  Lars(std::vector<torch::optim::OptimizerParamGroup> groups, torch::optim::SGDOptions defaults,
       double trust_coefficient);
  /// One step; takes no closure. Each p.grad() holds its scaled step afterwards.
  torch::Tensor step(LossClosure closure = nullptr) override;

 private:
  double trust_coefficient_;
};

/// The optimiser `kind` over `groups`; SGD and LARS with `momentum` (LARS's trust coefficient
/// `trust_coefficient`), Adam and AdamW with `betas`.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(OptimizerKind kind,
                                                        const std::vector<ParameterGroup>& groups,
                                                        double momentum, Betas betas = {},
                                                        double trust_coefficient = 1e-3);

}  // namespace pretext::pipelines
