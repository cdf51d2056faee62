#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "base/batch_slice.h"
#include "methods/backbone.h"
#include "methods/batch_norm.h"
#include "methods/collectives.h"

namespace pretext::methods {

/// What one training step produced: the loss to minimise and scalars worth logging, as 0-dim
/// tensors where they were computed (the trainer reads them, a host-device sync, only at the
/// steps it writes a log line).
struct StepOutput {
  torch::Tensor loss;
  std::map<std::string, torch::Tensor> logs;
};

/// A self-supervised method: a module that turns augmented views into a loss.
class MethodImpl : public torch::nn::Module {
 public:
  /// Views of one batch, as the method's augmentation preset made them ([B, C, H, W] each).
  virtual StepOutput step(const std::vector<torch::Tensor>& views) = 0;
  /// `step` with the acquisition date of every frame of every image, as days since 1970-01-01
  /// ([B, frames] int64; undefined when the data has no dates). Methods that encode time
  /// (SatMAE) override it; the others ignore the dates.
  virtual StepOutput step_dated(const std::vector<torch::Tensor>& views,
                                const torch::Tensor& /*acquired_at*/) {
    return step(views);
  }
  /// True when a view holds every frame of a temporal stack ([B, frames x C, H, W], all frames
  /// cropped, flipped and rotated alike, as SatMAE needs them aligned); false when view i is
  /// drawn from frame i mod frames alone (contrastive methods).
  virtual bool joint_frames() const { return false; }
  /// Augmented views per image that `step` takes.
  virtual int64_t view_count() const { return 2; }
  /// How many of the views, first in order, are global crops at the full augment size; the rest
  /// are local crops (multi-crop: augment.local_size pixels, local crop scales).
  virtual int64_t global_view_count() const { return view_count(); }
  /// Called after every optimiser step (EMA teachers, momentum schedules); `step` counts from 1.
  virtual void after_optimizer_step(int64_t /*step*/, int64_t /*total_steps*/) {}
  /// The encoder that evaluation, fine-tuning and export use.
  virtual std::shared_ptr<BackboneImpl> encoder() = 0;
  /// Parameters trained at the peak learning rate throughout, outside the warm-up and decay of
  /// the schedule (SimSiam's predictor).
  virtual std::vector<torch::Tensor> constant_lr_parameters() { return {}; }
  /// Called after encoder()'s weights were set from outside (pretrain --init-from): every network
  /// that starts as a copy of it (a teacher, a key or target encoder, DINO's student) becomes that
  /// copy again, so that no part of the method stays at its random initialisation.
  virtual void sync_encoder_copies() {}
  /// Why this method cannot train on `ranks` data-parallel ranks of `rank_batch` examples each,
  /// as {key of the method's options, reason}; nullopt when it can.
  virtual std::optional<std::pair<std::string, std::string>> data_parallel_mismatch(
      int64_t /*ranks*/, int64_t /*rank_batch*/) const {
    return std::nullopt;
  }
  /// Joins a data-parallel job: every batch statistic the loss takes (negatives, queues,
  /// centres) is taken over the global batch through `group`, which outlives the method, and
  /// with `sync_batch_norm` so is every batch norm's (model.sync_bn), so that N ranks compute
  /// what one process of the global batch does. nullptr: this process alone.
  virtual void set_group(Collectives* group, bool sync_batch_norm) {
    group_ = group;
    synchronise_batch_norm(*this, sync_batch_norm ? group : nullptr);
  }
  /// Where this process's batch lies in the global batch of a data-parallel step; methods that
  /// draw per example (MAE's masks) draw for the global batch and take these rows.
  void set_batch_slice(const BatchSlice& slice) { batch_slice_ = slice; }
  const BatchSlice& batch_slice() const { return batch_slice_; }

 protected:
  /// The data-parallel group, nullptr in a single process.
  Collectives* group() const { return group_; }
  /// Every rank's rows of [B, ...] `x` in rank order, without gradient (for keys and logs);
  /// `x` itself in a single process.
  torch::Tensor gathered(const torch::Tensor& x) const {
    return group_ ? group_->all_gather(x.detach()) : x;
  }
  /// The mean over the global batch's rows of [rows, ...] `x`, without gradient (centres,
  /// monitors): every rank's sum all-reduced, over every rank's rows (equal on all ranks).
  torch::Tensor global_mean(const torch::Tensor& x) const {
    if (!group_) return x.detach().mean(0);
    auto total = x.detach().sum(0);
    group_->sum({total});
    return total / static_cast<double>(x.size(0) * group_->size());
  }

 private:
  BatchSlice batch_slice_;
  Collectives* group_ = nullptr;
};

}  // namespace pretext::methods
