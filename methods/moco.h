#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>

#include <ATen/core/Generator.h>
#include <torch/arg.h>

#include "base/fields.h"
#include "methods/momentum.h"
#include "methods/step_random.h"

namespace pretext::methods {

/// MoCo (He et al. 2020; v2: Chen et al. 2020; v3: Chen, Xie, He 2021): a query encoder learns
/// to pick its key, the other view of its image through a momentum encoder, among negatives.
///   Moco moco(backbone, momentum_backbone, MocoOptions().version(2).queue_size(16384));
struct MocoOptions {
  /// 2: negatives from a queue of earlier keys; 3: a predictor on the query branch and the other
  /// keys of the batch as negatives.
  TORCH_ARG(int64_t, version) = 2;
  /// Softmax temperature of InfoNCE.
  TORCH_ARG(double, temperature) = 0.2;
  /// Projector: `projection_layers` Linear layers, `projection_hidden_dim` wide (BN, ReLU), to
  /// `projection_dim`.
  TORCH_ARG(int64_t, projection_dim) = 128;
  TORCH_ARG(int64_t, projection_hidden_dim) = 2048;
  TORCH_ARG(int64_t, projection_layers) = 2;
  /// Hidden width of v3's predictor.
  TORCH_ARG(int64_t, predictor_hidden_dim) = 4096;
  /// Keys kept as negatives (v2); the queue is part of the checkpoint.
  TORCH_ARG(int64_t, queue_size) = 65536;
  /// Momentum of the key encoder at the start; cosine schedule to 1 at the last step.
  TORCH_ARG(double, momentum) = 0.99;
  /// v2's shuffle-BN on one process: queries and keys go through their encoders in this many
  /// sub-batches, each with its own batch-norm statistics (one GPU's share in the reference), the
  /// keys shuffled across them first, so that a key never shares statistics with its query (the
  /// reference's _batch_shuffle_ddp; the MoCo authors' SplitBatchNorm on one GPU). 1: one batch.
  TORCH_ARG(int64_t, shuffle_bn_splits) = 8;

 public:
  void visit_fields(FieldVisitor& visit);
};

/// `forward` of the rows of `x` in `splits` sub-batches (each a separate call, so each has its own
/// batch-norm statistics): the rows in the order `order` [B] are cut into `splits` nearly equal
/// consecutive parts, and the outputs are put back in the rows' own order. At most B / 2 parts,
/// so that batch norm never sees a single row.
torch::Tensor forward_in_splits(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                                const torch::Tensor& x, int64_t splits, const torch::Tensor& order);

class MocoImpl : public MomentumMethodImpl {
 public:
  MocoImpl(std::shared_ptr<BackboneImpl> backbone, std::shared_ptr<BackboneImpl> momentum_backbone,
           const MocoOptions& options);
  /// Two views of the same images: two augmentations, or one place on two dates. Each view is a
  /// query for the other's key (the symmetric loss of MoCo v3, also used for v2 here).
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  /// v2: [queue_size, projection_dim] normalised keys, oldest overwritten first.
  const torch::Tensor& queue() const { return queue_; }
  void after_optimizer_step(int64_t step, int64_t total_steps) override;
  /// v2 with shuffle-BN: the sub-batches of the global batch must split evenly over the ranks.
  std::optional<std::pair<std::string, std::string>> data_parallel_mismatch(
      int64_t ranks, int64_t rank_batch) const override;
  /// v2 with shuffle-BN keeps each sub-batch's own statistics (what shuffle-BN is); otherwise
  /// batch norm follows `sync_batch_norm`.
  void set_group(Collectives* group, bool sync_batch_norm) override;

 private:
  /// Shuffle-BN sub-batches of a global batch of `rows` (at most rows / 2, so that batch norm
  /// never sees a single row).
  int64_t shuffle_bn_parts(int64_t rows) const;
  /// v2's queries of this rank's rows and keys of the global batch's, through shuffle-BN
  /// sub-batches: on N ranks each computes its share of the sub-batches, the keys' from the
  /// images of every rank (the reference's _batch_shuffle_ddp / _batch_unshuffle_ddp).
  std::pair<torch::Tensor, torch::Tensor> split_batch_projections(const torch::Tensor& views,
                                                                  at::Generator& generator);
  void enqueue(const torch::Tensor& keys);
  MocoOptions options_;
  torch::Tensor queue_;
  MirroredInt queue_position_;
  StepDraws shuffle_draws_;  // the key shuffle of each step
};

}  // namespace pretext::methods
