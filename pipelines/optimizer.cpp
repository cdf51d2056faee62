#include "pipelines/optimizer.h"

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

std::vector<ParameterGroup> decay_groups(torch::nn::Module& module, double lr,
                                         double weight_decay) {
  ParameterGroup decay{{}, lr, weight_decay}, no_decay{{}, lr, 0.0};
  for (auto& item : module.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    (decays(item.key(), item.value()) ? decay : no_decay).parameters.push_back(item.value());
  }
  return {decay, no_decay};
}

namespace {

template <typename Optimizer, typename Options>
std::unique_ptr<torch::optim::Optimizer> build(const std::vector<ParameterGroup>& groups,
                                               const std::function<Options(double, double)>& with) {
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (const auto& group : groups) {
    if (group.parameters.empty()) continue;
    param_groups.emplace_back(group.parameters,
                              std::make_unique<Options>(with(group.lr, group.weight_decay)));
  }
  return std::make_unique<Optimizer>(param_groups, with(groups.at(0).lr, 0.0));
}

}  // namespace

std::unique_ptr<torch::optim::Optimizer> make_optimizer(OptimizerKind kind,
                                                        const std::vector<ParameterGroup>& groups,
                                                        double momentum) {
  using namespace torch::optim;
  if (kind == OptimizerKind::kAdamw)
    return build<AdamW, AdamWOptions>(
        groups, [](double lr, double wd) { return AdamWOptions(lr).weight_decay(wd); });
  if (kind == OptimizerKind::kAdam)
    return build<Adam, AdamOptions>(
        groups, [](double lr, double wd) { return AdamOptions(lr).weight_decay(wd); });
  return build<SGD, SGDOptions>(groups, [momentum](double lr, double wd) {
    return SGDOptions(lr).momentum(momentum).weight_decay(wd);
  });
}

}  // namespace pretext::pipelines
