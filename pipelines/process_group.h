#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "methods/collectives.h"
#include "pipelines/world.h"

namespace pretext::pipelines {

/// The collectives of a data-parallel job over PyTorch's c10d: Gloo over TCP, with the store
/// rank 0 hosts (or torchrun's agent). Every collective either completes or throws
/// DistributedError naming this rank and what it was doing, within the timeout: a rank that died
/// ends the others' waits, never a hang.
class ProcessGroup : public methods::Collectives {
 public:
  /// Joins the job `world` describes; waits at most `timeout` for the other ranks, here and in
  /// every collective after.
  ProcessGroup(const World& world, std::chrono::milliseconds timeout);
  ~ProcessGroup() override;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int64_t rank() const override { return world_.rank; }
  int64_t size() const override { return world_.world_size; }

  /// What the collectives that follow are for, named in their errors ("the gradients of step 12").
  void doing(std::string what) { doing_ = std::move(what); }

  /// Throws ConfigError on every rank unless every rank passes rank 0's `text` (the world size
  /// and the resolved config): the ranks that differ, and on them the first differing line.
  void check_same(const std::string& name, const std::string& text);
  /// Rank 0's values of `tensors`, in place on every rank (one message per tensor dtype).
  void broadcast(const std::vector<at::Tensor>& tensors);
  /// Every rank's `tensors` summed, in place, then divided by the world size: flattened into
  /// buckets of about `bucket_bytes` per dtype, one all-reduce each.
  void average(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = int64_t{25} << 20);
  /// `tensors` summed over ranks, in place (one all-reduce per dtype).
  void sum(const std::vector<at::Tensor>& tensors) override;
  /// Every rank's [B, ...] `tensor`, concatenated in rank order: [size x B, ...].
  at::Tensor all_gather(const at::Tensor& tensor) override;
  /// Waits for every rank; names the ranks that did not arrive within the timeout.
  void barrier();
  /// Wall-clock seconds this rank has spent in collectives so far (communication and waiting
  /// for slower ranks).
  double collective_seconds() const { return collective_seconds_; }

 private:
  struct Impl;
  [[noreturn]] void fail(const std::exception& error) const;
  void all_reduce_flat(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes, bool mean);

  World world_;
  std::chrono::milliseconds timeout_;
  std::string doing_ = "starting";
  double collective_seconds_ = 0;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pretext::pipelines
