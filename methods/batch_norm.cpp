#include "methods/batch_norm.h"

#include <vector>

#include <torch/nn/functional/batchnorm.h>
#include <torch/types.h>

namespace pretext::methods {

BatchNormImpl::BatchNormImpl(const BatchNormOptions& options_) : options(options_) { reset(); }

void BatchNormImpl::reset() {
  const int64_t c = options.features();
  if (options.affine()) {
    weight = register_parameter("weight", torch::ones({c}));
    bias = register_parameter("bias", torch::zeros({c}));
  }
  running_mean = register_buffer("running_mean", torch::zeros({c}));
  running_var = register_buffer("running_var", torch::ones({c}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kInt64));
}

torch::Tensor BatchNormImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() >= 2 && x.size(1) == options.features(), "BatchNorm of ", options.features(),
              " channels got input ", x.sizes());
  if (is_training()) num_batches_tracked.add_(1);
  if (is_training() && group_ && group_->size() > 1) return forward_global(x);
  namespace F = torch::nn::functional;
  return F::batch_norm(x, running_mean, running_var,
                       F::BatchNormFuncOptions()
                           .weight(weight)
                           .bias(bias)
                           .training(is_training())
                           .momentum(options.momentum())
                           .eps(options.eps()));
}

torch::Tensor BatchNormImpl::forward_global(const torch::Tensor& x) {
  std::vector<int64_t> dims = {0}, shape(static_cast<size_t>(x.dim()), 1);
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  shape[1] = -1;
  // Statistics in at least single precision (bf16 / fp16 inputs under autocast).
  const auto xf = x.element_size() < 4 ? x.to(torch::kFloat) : x;
  const int64_t count = x.numel() / options.features();
  // [mean; biased variance; count] of this rank, gathered: [ranks, 3, C].
  const auto local =
      torch::stack({xf.mean(dims), xf.var(dims, /*unbiased=*/false),
                    torch::full({options.features()}, static_cast<double>(count), xf.options())});
  const auto all = all_gather_with_grad(*group_, local.unsqueeze(0));
  const auto means = all.select(1, 0), variances = all.select(1, 1);
  const auto counts = all.select(1, 2).detach();
  const auto total = counts.sum(0);
  const auto mean = (means * counts).sum(0) / total;
  // Within-rank plus between-rank variance: exact, with no E[x^2] - E[x]^2 cancellation.
  const auto variance = ((variances + (means - mean).pow(2)) * counts).sum(0) / total;
  auto y = (xf - mean.view(shape)) * torch::rsqrt(variance + options.eps()).view(shape);
  if (options.affine()) y = y * weight.view(shape) + bias.view(shape);
  {
    torch::NoGradGuard no_grad;
    const double m = options.momentum();
    running_mean.mul_(1 - m).add_(mean.detach() * m);
    running_var.mul_(1 - m).add_(variance.detach() * (total / (total - 1)) * m);
  }
  return y.to(x.scalar_type());
}

void synchronise_batch_norm(torch::nn::Module& module, Collectives* group) {
  for (const auto& child : module.modules())
    if (auto* bn = child->as<BatchNormImpl>()) bn->set_group(group);
}

}  // namespace pretext::methods
