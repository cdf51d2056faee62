#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <torch/nn/module.h>

#include "methods/method.h"
#include "methods/projection_head.h"

namespace pretext::methods {

/// Copies every parameter and buffer of `from` into `to` (same layout), gradients untouched.
void copy_weights(torch::nn::Module& from, torch::nn::Module& to);

/// The parameters of online networks paired by name with their momentum copies', once, for the
/// EMA step after every optimiser step: target = m * target + (1 - m) * online, all pairs in two
/// fused _foreach kernels (buffers are the targets' own).
class MomentumPairs {
 public:
  /// `target` starts as a copy of `online`, its parameters without gradients, and follows it.
  void add(torch::nn::Module& online, torch::nn::Module& target);
  void update(double m);

 private:
  std::vector<torch::Tensor> online_, target_;
};

/// Momentum after optimiser step `step` of `total` on the cosine schedule that BYOL, MoCo v3 and
/// DINO share: 1 - (1 - start) (cos(pi step / total) + 1) / 2, from `start` to 1 at the last step.
double cosine_momentum(double start, int64_t step, int64_t total);

/// The shape MoCo and BYOL share: an online backbone, projector and optional predictor, and a
/// momentum copy of the backbone and projector that follows them on the cosine schedule.
class MomentumMethodImpl : public MethodImpl {
 public:
  void after_optimizer_step(int64_t step, int64_t total_steps) override;
  /// The momentum backbone becomes the online one again.
  void sync_encoder_copies() override;
  /// The online backbone (what the references keep).
  std::shared_ptr<BackboneImpl> encoder() override { return backbone_; }
  std::shared_ptr<BackboneImpl> momentum_encoder() { return momentum_backbone_; }
  /// Online projections [B, D] of a batch of views, through the predictor when there is one.
  torch::Tensor online(const torch::Tensor& views);
  /// Momentum projections [B, D] of a batch of views, without gradient.
  torch::Tensor target(const torch::Tensor& views);

 protected:
  /// `projector.in_dim` is set from the backbone. `predictor_hidden_dim` 0: no predictor.
  /// `momentum`: the schedule's start.
  MomentumMethodImpl(std::shared_ptr<BackboneImpl> backbone,
                     std::shared_ptr<BackboneImpl> momentum_backbone,
                     ProjectionHeadOptions projector, int64_t predictor_hidden_dim,
                     double momentum);

 private:
  std::shared_ptr<BackboneImpl> backbone_, momentum_backbone_;
  ProjectionHead projector_{nullptr}, momentum_projector_{nullptr}, predictor_{nullptr};
  MomentumPairs momentum_pairs_;
  double momentum_;
};

}  // namespace pretext::methods
