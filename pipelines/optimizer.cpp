#include "pipelines/optimizer.h"

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

namespace pretext::pipelines {

std::vector<ParameterGroup> decay_groups(torch::nn::Module& module, double lr,
                                         double weight_decay) {
  ParameterGroup decay{{}, lr, weight_decay}, no_decay{{}, lr, 0.0};
  for (auto& p : module.parameters()) {
    if (!p.requires_grad()) continue;
    (p.dim() <= 1 ? no_decay : decay).parameters.push_back(p);
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

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& name,
                                                        const std::vector<ParameterGroup>& groups,
                                                        double momentum) {
  using namespace torch::optim;
  if (name == "adamw")
    return build<AdamW, AdamWOptions>(
        groups, [](double lr, double wd) { return AdamWOptions(lr).weight_decay(wd); });
  if (name == "adam")
    return build<Adam, AdamOptions>(
        groups, [](double lr, double wd) { return AdamOptions(lr).weight_decay(wd); });
  return build<SGD, SGDOptions>(groups, [momentum](double lr, double wd) {
    return SGDOptions(lr).momentum(momentum).weight_decay(wd);
  });
}

}  // namespace pretext::pipelines
