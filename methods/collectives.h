#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace pretext::methods {

/// The cross-rank operations a method needs in a data-parallel run, where N ranks each hold an
/// equal share of the global batch; pipelines provides them over c10d. Every rank calls the same
/// operations in the same order.
class Collectives {
 public:
  virtual ~Collectives() = default;
  virtual int64_t rank() const = 0;
  virtual int64_t size() const = 0;
  /// `tensors` summed over ranks, in place.
  virtual void sum(const std::vector<at::Tensor>& tensors) = 0;
  /// Every rank's [B, ...] `tensor`, concatenated in rank order: [size x B, ...].
  virtual at::Tensor all_gather(const at::Tensor& tensor) = 0;
};

/// Every rank's [B, ...] `x` in rank order, [size x B, ...], differentiable: the gradient that
/// reaches this rank's rows is their gradient summed over every rank's loss (an all-reduce in
/// backward, as torch.distributed.nn.all_gather). With gradients averaged over the ranks after
/// backward, the ranks then follow the gradient of the mean of their losses: what one process of
/// the global batch computes.
at::Tensor all_gather_with_grad(Collectives& group, const at::Tensor& x);

}  // namespace pretext::methods
