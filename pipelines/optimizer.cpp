#include "pipelines/optimizer.h"

#include <algorithm>
#include <tuple>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

namespace pretext::pipelines {

bool decays(const std::string& name, const torch::Tensor& parameter) {
  const auto ends_with = [&](const std::string& tail) {
    return name.size() >= tail.size() &&
           name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
           (name.size() == tail.size() || name[name.size() - tail.size() - 1] == '.');
  };
  return parameter.dim() > 1 && !ends_with("cls_token") && !ends_with("pos_embed");
}

std::vector<ParameterGroup> decay_groups(torch::nn::Module& module, double lr, double weight_decay,
                                         const std::vector<torch::Tensor>& constant_lr) {
  // decay, no decay; then the same at a constant rate.
  std::vector<ParameterGroup> groups = {{{}, lr, weight_decay, true},
                                        {{}, lr, 0.0, true},
                                        {{}, lr, weight_decay, false},
                                        {{}, lr, 0.0, false}};
  for (auto& item : module.named_parameters()) {
    const auto& parameter = item.value();
    if (!parameter.requires_grad()) continue;
    const bool constant = std::any_of(constant_lr.begin(), constant_lr.end(),
                                      [&](const torch::Tensor& p) { return p.is_same(parameter); });
    groups[(constant ? 2 : 0) + (decays(item.key(), parameter) ? 0 : 1)].parameters.push_back(
        parameter);
  }
  groups.erase(std::remove_if(groups.begin(), groups.end(),
                              [](const ParameterGroup& g) { return g.parameters.empty(); }),
               groups.end());
  return groups;
}

namespace {

template <typename Options>
Options& options_as(torch::optim::OptimizerParamGroup& group) {
  return static_cast<Options&>(group.options());
}

template <typename Options>
const Options& options_as(const torch::optim::OptimizerParamGroup& group) {
  return static_cast<const Options&>(group.options());
}

/// `groups` as torch's parameter groups, each with the options `with(lr, weight_decay)`.
template <typename Options>
std::vector<torch::optim::OptimizerParamGroup> param_groups_of(
    const std::vector<ParameterGroup>& groups, const std::function<Options(double, double)>& with) {
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const auto& group : groups) {
    if (group.parameters.empty()) continue;
    param_groups.emplace_back(group.parameters,
                              std::make_unique<Options>(with(group.lr, group.weight_decay)));
  }
  return param_groups;
}

template <typename Optimizer, typename Options>
std::unique_ptr<torch::optim::Optimizer> build(const std::vector<ParameterGroup>& groups,
                                               const std::function<Options(double, double)>& with) {
  return std::make_unique<Optimizer>(param_groups_of(groups, with), with(groups.at(0).lr, 0.0));
}

/// Every group's weight decay set to 0 while it lives, restored after, also when a step throws.
class WithoutDecay {
 public:
  explicit WithoutDecay(std::vector<torch::optim::OptimizerParamGroup>& groups) : groups_(groups) {
    for (auto& group : groups_) {
      auto& options = options_as<torch::optim::SGDOptions>(group);
      group_decays_.push_back(options.weight_decay());
      options.weight_decay(0.0);
    }
  }
  ~WithoutDecay() {
    for (size_t g = 0; g < group_decays_.size(); ++g)
      options_as<torch::optim::SGDOptions>(groups_[g]).weight_decay(group_decays_[g]);
  }
  WithoutDecay(const WithoutDecay&) = delete;
  WithoutDecay& operator=(const WithoutDecay&) = delete;

 private:
  std::vector<torch::optim::OptimizerParamGroup>& groups_;
  std::vector<double> group_decays_;
};

}  // namespace

Lars::Lars(std::vector<torch::optim::OptimizerParamGroup> groups, torch::optim::SGDOptions defaults,
           double trust_coefficient)
    : SGD(std::move(groups), defaults), trust_coefficient_(trust_coefficient) {}

torch::Tensor Lars::step(LossClosure closure) {
  TORCH_CHECK(!closure, "LARS takes no closure");
  {
    torch::NoGradGuard no_grad;
    for (auto& group : param_groups()) {
      const double decay = options_as<torch::optim::SGDOptions>(group).weight_decay();
      for (auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        auto update = decay != 0.0 ? p.grad().add(p, decay) : p.grad();
        if (p.dim() > 1) {
          // The ratio stays on the device: no host sync per tensor.
          const auto weight_norm = p.norm(), update_norm = update.norm();
          update.mul_(torch::where(weight_norm.gt(0).logical_and(update_norm.gt(0)),
                                   trust_coefficient_ * weight_norm / update_norm,
                                   torch::ones_like(weight_norm)));
        }
        p.mutable_grad() = update;
      }
    }
  }
  // The decay is in the updates now: SGD's step must not add it again.
  const WithoutDecay without_decay(param_groups());
  return SGD::step();
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(OptimizerKind kind,
                                                        const std::vector<ParameterGroup>& groups,
                                                        double momentum, Betas betas,
                                                        double trust_coefficient) {
  using namespace torch::optim;
  const std::tuple<double, double> b{betas.first, betas.second};
  if (kind == OptimizerKind::kAdamw)
    return build<AdamW, AdamWOptions>(
        groups, [b](double lr, double wd) { return AdamWOptions(lr).betas(b).weight_decay(wd); });
  if (kind == OptimizerKind::kAdam)
    return build<Adam, AdamOptions>(
        groups, [b](double lr, double wd) { return AdamOptions(lr).betas(b).weight_decay(wd); });
  const std::function<SGDOptions(double, double)> sgd = [momentum](double lr, double wd) {
    return SGDOptions(lr).momentum(momentum).weight_decay(wd);
  };
  if (kind == OptimizerKind::kLars)
    return std::make_unique<Lars>(param_groups_of(groups, sgd), sgd(groups.at(0).lr, 0.0),
                                  trust_coefficient);
  return build<SGD, SGDOptions>(groups, sgd);
}

double weight_decay_of(const torch::optim::OptimizerParamGroup& group, OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kAdamw:
      return options_as<torch::optim::AdamWOptions>(group).weight_decay();
    case OptimizerKind::kAdam:
      return options_as<torch::optim::AdamOptions>(group).weight_decay();
    case OptimizerKind::kSgd:
    case OptimizerKind::kLars:
      break;
  }
  return options_as<torch::optim::SGDOptions>(group).weight_decay();
}

void set_weight_decay(torch::optim::OptimizerParamGroup& group, OptimizerKind kind, double decay) {
  switch (kind) {
    case OptimizerKind::kAdamw:
      options_as<torch::optim::AdamWOptions>(group).weight_decay(decay);
      return;
    case OptimizerKind::kAdam:
      options_as<torch::optim::AdamOptions>(group).weight_decay(decay);
      return;
    case OptimizerKind::kSgd:
    case OptimizerKind::kLars:
      options_as<torch::optim::SGDOptions>(group).weight_decay(decay);
      return;
  }
}

void clip_gradients_per_parameter(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  for (const auto& parameter : parameters) {
    auto grad = parameter.grad();
    if (!grad.defined()) continue;
    grad.mul_((max_norm / (grad.norm() + 1e-6)).clamp_max(1.0));
  }
}

void clip_gradients_globally(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads, norms;
  for (const auto& parameter : parameters)
    if (parameter.grad().defined()) {
      grads.push_back(parameter.grad());
      norms.push_back(parameter.grad().norm());
    }
  if (grads.empty()) return;
  const auto coefficient = (max_norm / (torch::stack(norms).norm() + 1e-6)).clamp_max(1.0);
  for (auto& grad : grads) grad.mul_(coefficient);
}

}  // namespace pretext::pipelines
