#pragma once

#include <cstdint>

#include <torch/arg.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include "methods/collectives.h"

namespace pretext::methods {

/// Batch normalisation of the methods' networks.
///   BatchNorm bn(BatchNormOptions(64).affine(false));
struct BatchNormOptions {
  explicit BatchNormOptions(int64_t features) : features_(features) {}
  /// Channels (dimension 1 of the input).
  TORCH_ARG(int64_t, features);
  /// Added to the variance before its square root.
  TORCH_ARG(double, eps) = 1e-5;
  /// Weight of each batch in the running statistics.
  TORCH_ARG(double, momentum) = 0.1;
  /// A learnt scale and shift per channel.
  TORCH_ARG(bool, affine) = true;
};

/// Batch normalisation over every dimension but the channels ([B, C] or [B, C, H, W]), as
/// torch.nn.BatchNorm1d/2d, with its parameter and buffer names (weight, bias, running_mean,
/// running_var, num_batches_tracked), so that exported state dicts load there. In a data-parallel
/// run with a group set, training statistics are those of the global batch, forward and backward
/// (PyTorch's SyncBatchNorm, which the C++ API lacks and which is CUDA-only): each rank's mean and
/// variance are gathered with their counts and combined, the same on every rank.
class BatchNormImpl : public torch::nn::Cloneable<BatchNormImpl> {
 public:
  explicit BatchNormImpl(const BatchNormOptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);
  /// `group` (nullptr: none) provides the other ranks' statistics; it outlives this module.
  void set_group(Collectives* group) { group_ = group; }

  BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  torch::Tensor forward_global(const torch::Tensor& x);
  Collectives* group_ = nullptr;
};
TORCH_MODULE(BatchNorm);

/// Every BatchNorm in `module` takes the statistics of the global batch over `group` (nullptr:
/// each its own batch's again).
void synchronise_batch_norm(torch::nn::Module& module, Collectives* group);

}  // namespace pretext::methods
