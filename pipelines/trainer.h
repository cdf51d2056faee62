#pragma once

#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <torch/arg.h>
#include <torch/optim/optimizer.h>

#include "base/fields.h"
#include "domains/augment.h"
#include "domains/sampler.h"
#include "io/loader.h"
#include "methods/method.h"
#include "pipelines/checkpoint.h"
#include "pipelines/optimizer_kind.h"
#include "pipelines/precision.h"
#include "pipelines/process_group.h"
#include "pipelines/run_dir.h"
#include "pipelines/run_log.h"

namespace pretext::pipelines {

/// The `train` section.
///   Trainer trainer(method, TrainerOptions().epochs(10).optimizer(OptimizerKind::kAdamw).lr(1e-3),
///   context);
struct TrainerOptions {
  /// Passes over the data.
  TORCH_ARG(int64_t, epochs) = 100;
  /// Stops after this many optimiser steps if fewer than the epochs give; 0: the epochs decide.
  /// The learning-rate schedule spans the steps actually run.
  TORCH_ARG(int64_t, max_steps) = 0;
  /// Images per step (per rank).
  TORCH_ARG(int64_t, batch_size) = 256;
  /// "sgd" (with momentum), "adam", "adamw" or "lars".
  TORCH_ARG(OptimizerKind, optimizer) = OptimizerKind::kSgd;
  /// Peak learning rate, reached after the warm-up, then cosine decay to `min_lr`: the rate of the
  /// global batch (every rank's together), times global batch / 256 with lr_scaling "linear".
  TORCH_ARG(double, lr) = 0.3;
  TORCH_ARG(LrScaling, lr_scaling) = LrScaling::kNone;
  TORCH_ARG(double, min_lr) = 0.0;
  /// Linear warm-up from lr / warmup_steps, in optimiser steps.
  TORCH_ARG(int64_t, warmup_steps) = 0;
  /// SGD and LARS momentum.
  TORCH_ARG(double, momentum) = 0.9;
  /// LARS: the step of each weight tensor is this fraction of its norm (before the rate), the
  /// SimCLR and BYOL references' eta (solo-learn's CIFAR recipes use 0.02 with another
  /// denominator and a cap, see Lars in pipelines/optimizer.h).
  TORCH_ARG(double, trust_coefficient) = 1e-3;
  /// Adam / AdamW: the decay rates of the running means of the gradient and of its square. MAE
  /// and SatMAE pretrain with [0.9, 0.95] (their configs say so); PyTorch's default is kept here.
  TORCH_ARG(std::vector<double>, betas) = std::vector<double>{0.9, 0.999};
  /// Decoupled for AdamW. Never applied to biases and normalisation weights (tensors of one
  /// dimension).
  TORCH_ARG(double, weight_decay) = 1e-4;
  /// Weight decay over training: "constant", or "cosine" from weight_decay to weight_decay_end
  /// over all steps (DINO's schedule, 0.04 to 0.4), on the parameters that decay.
  TORCH_ARG(WeightDecaySchedule, weight_decay_schedule) = WeightDecaySchedule::kConstant;
  TORCH_ARG(double, weight_decay_end) = 0.4;
  /// Largest gradient norm; 0 disables clipping. clip_mode "global" bounds the norm of all
  /// gradients together, "per_parameter" each parameter's own (DINO's clip_gradients).
  TORCH_ARG(double, grad_clip) = 0.0;
  TORCH_ARG(ClipMode, clip_mode) = ClipMode::kGlobal;
  /// A checkpoint every this many steps (and always at the end); 0: only at the end.
  TORCH_ARG(int64_t, checkpoint_every) = 500;
  /// A metrics row every this many steps.
  TORCH_ARG(int64_t, log_every) = 10;

 public:
  void visit_fields(FieldVisitor& visit);
};

/// Where and as whom a trainer runs.
struct TrainerContext {
  RunDir run_dir;
  uint64_t seed = 0;
  c10::Device device = c10::Device("cpu");
  /// The data-parallel job this process is a rank of; null for one process. Rank r trains on rows
  /// [r x B, (r + 1) x B) of the global batch of world size x B that one process would take.
  ProcessGroup* group = nullptr;
  /// With `group`: batch norm takes the statistics of the global batch (model.sync_bn).
  bool sync_batch_norm = true;
  /// What the method's forward computes in (run.precision); fp16 scales the loss.
  Precision precision = Precision::kFp32;
  /// Written into checkpoints; a resume with another config is refused.
  std::string config_text;
  RunLog* log = nullptr;
};

struct TrainResult {
  int64_t steps = 0;
  double last_loss = 0.0;
  bool interrupted = false;
};

/// The end of a training step: backward of `loss`, gradient clipping as `options` say, and the
/// optimiser step. With `loss_scale` (fp16) the loss is scaled before backward and the gradients
/// unscaled before clipping; a step with an inf or NaN gradient is skipped, and the scale is
/// updated. With `group` the gradients are averaged over its ranks right after backward. Whether
/// the optimiser stepped.
bool backward_and_step(const torch::Tensor& loss, torch::optim::Optimizer& optimizer,
                       const std::vector<torch::Tensor>& parameters, const TrainerOptions& options,
                       LossScale* loss_scale, ProcessGroup* group = nullptr);

/// Owns the optimisation loop: data order, augmentation, optimiser, schedule, clipping,
/// checkpoints, metrics. Everything a resume needs is in one checkpoint; augmentation randomness
/// is derived from (seed, step) and data order from (seed, epoch), so nothing else is carried.
class Trainer {
 public:
  Trainer(std::shared_ptr<methods::MethodImpl> method, TrainerOptions options,
          TrainerContext context);

  /// Continues from the run directory's checkpoint. Throws InputError for a missing or corrupt
  /// checkpoint, ConfigError when it was written with another config.
  void resume();
  /// Trains until the step budget is spent or `should_stop(step)` says so after a step (then a
  /// checkpoint is written and the result says interrupted).
  TrainResult fit(std::shared_ptr<const io::Dataset> dataset, const domains::ViewAugment& augment,
                  io::LoaderOptions loader_options,
                  const std::function<bool(int64_t)>& should_stop = {});

  /// Learning rate of optimiser step `step` (0-based) of `total_steps`.
  double lr_at(int64_t step, int64_t total_steps) const;
  /// train.lr, scaled when train.lr_scaling says so: the schedule's top, and the rate of the
  /// method's constant_lr_parameters throughout.
  double peak_lr() const;
  /// Weight decay of the decaying parameters at step `step` (0-based) of `total_steps`.
  double weight_decay_at(int64_t step, int64_t total_steps) const;
  const TrainState& state() const { return state_; }
  const torch::optim::Optimizer& optimizer() const { return *optimizer_; }
  std::string checkpoint_path() const { return context_.run_dir.checkpoint(); }

 private:
  void save();
  /// One optimiser step of `total` on `batch` at learning rate `lr`; returns the method's loss
  /// and logs.
  methods::StepOutput step(const io::Batch& batch, const domains::ViewAugment& augment, double lr,
                           int64_t total);
  /// The number of steps to run: train.epochs over the data set, capped by train.max_steps.
  int64_t total_steps(int64_t dataset_size) const;
  int64_t rank() const { return context_.group ? context_.group->rank() : 0; }
  int64_t world_size() const { return context_.group ? context_.group->size() : 1; }
  /// Rank 0 writes metrics and checkpoints; the others only train.
  bool writes() const { return rank() == 0; }
  /// Every rank agrees on whether to stop: one rank's Ctrl-C stops them all after the same step.
  bool agreed(bool stop);
  /// A logged scalar as the mean of every rank's (the value itself for one process).
  double mean_over_ranks(const torch::Tensor& value);
  /// Throws DistributedError unless every rank holds the same weights (a checksum of each).
  void check_replicas_agree();
  /// metrics.csv, ready for rows: its header, and when resuming the rows up to the checkpoint.
  std::ofstream open_metrics(bool resuming);

  std::shared_ptr<methods::MethodImpl> method_;
  TrainerOptions options_;
  TrainerContext context_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  TrainState state_;
  bool resumed_ = false;
  std::vector<size_t> decaying_groups_;     // optimiser groups with weight decay
  std::vector<size_t> constant_lr_groups_;  // optimiser groups kept at the peak rate
};

}  // namespace pretext::pipelines
