#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/nn/modules/container/sequential.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/momentum.h"
#include "methods/step_random.h"

namespace pretext::methods {

/// DINO (Caron et al. 2021): a student matches the centred, sharpened outputs of a teacher that
/// is an exponential moving average of the student, across global and local crops.
///   Dino dino(backbone, DinoOptions().out_dim(4096).local_crops(6));
struct DinoOptions {
  /// Head: an MLP of `head_layers` layers (`hidden_dim` wide, GELU) to a `bottleneck_dim`
  /// L2-normalised embedding, then a weight-normalised linear layer to `out_dim` prototypes.
  TORCH_ARG(int64_t, out_dim) = 4096;
  TORCH_ARG(int64_t, hidden_dim) = 2048;
  TORCH_ARG(int64_t, bottleneck_dim) = 256;
  TORCH_ARG(int64_t, head_layers) = 3;
  /// Batch normalisation after each hidden layer of the head (the reference's use_bn_in_head):
  /// takes the common direction out of convolutional features, whose per-image differences are
  /// otherwise too small for the teacher's softmax to tell images apart early on.
  TORCH_ARG(bool, use_bn) = false;
  /// Keep the last layer's weight-norm gain fixed at 1 (the reference's stabilising default).
  TORCH_ARG(bool, norm_last_layer) = true;
  /// Student temperature; teacher temperature rising linearly from warmup_teacher_temp to
  /// teacher_temp over warmup_teacher_steps optimiser steps.
  TORCH_ARG(double, student_temp) = 0.1;
  TORCH_ARG(double, teacher_temp) = 0.04;
  TORCH_ARG(double, warmup_teacher_temp) = 0.04;
  TORCH_ARG(int64_t, warmup_teacher_steps) = 0;
  /// Teacher EMA momentum at the start; it follows a cosine schedule to 1 at the last step.
  TORCH_ARG(double, momentum_teacher) = 0.996;
  /// Momentum of the running mean of teacher outputs that is subtracted before the softmax.
  TORCH_ARG(double, center_momentum) = 0.9;
  /// Optimiser steps during which the last layer of the student head gets no gradient (the
  /// reference freezes it for the first epoch: it stabilises the start).
  TORCH_ARG(int64_t, freeze_last_layer_steps) = 0;
  /// Local crops per image beside the two global ones (augment.local_size pixels each).
  TORCH_ARG(int64_t, local_crops) = 6;
  /// How the teacher's outputs become targets: "centre" (DINO: minus the running centre, then
  /// the sharpened softmax) or "sinkhorn_knopp" (DINOv2: sinkhorn_iterations Sinkhorn-Knopp
  /// normalisations over the global batch's teacher outputs of both global crops, which spread
  /// the batch evenly over the prototypes; the centre is then left as it is).
  TORCH_ARG(std::string, centering) = "centre";
  TORCH_ARG(int64_t, sinkhorn_iterations) = 3;
  /// DINOv2's KoLeo regulariser on the student's features of each global crop, with this weight
  /// (DINOv2: 0.1): minus the mean log distance of each L2-normalised feature to its nearest
  /// neighbour in the batch, which spreads the features evenly. 0: off.
  TORCH_ARG(double, koleo_weight) = 0.0;

 public:
  void visit_fields(FieldVisitor& visit);
};

/// The DINO projection head; with `patch_out_dim` > 0 a second weight-normalised last layer of
/// that many prototypes for patch tokens after the same MLP (iBOT's head without shared_head).
class DinoHeadImpl : public torch::nn::Module {
 public:
  DinoHeadImpl(int64_t in_dim, const DinoOptions& options, int64_t patch_out_dim = 0);
  /// Features [..., in_dim] -> [..., out_dim]; `freeze_last`: the last layer's weights take
  /// part without gradient.
  torch::Tensor forward(const torch::Tensor& features, bool freeze_last = false);
  /// Patch tokens [..., in_dim] through the MLP and the patch last layer (the class token's
  /// when there is none).
  torch::Tensor forward_patches(const torch::Tensor& tokens, bool freeze_last = false);

 private:
  /// The L2-normalised bottleneck of the MLP through last layer (v, g).
  torch::Tensor project(const torch::Tensor& features, const torch::Tensor& v,
                        const torch::Tensor& g, bool freeze_last);

  torch::nn::Sequential mlp_{nullptr};
  torch::Tensor last_v_, last_g_;    // weight-normalised last layer: W = g * v / ||v|| per row
  torch::Tensor patch_v_, patch_g_;  // the patch last layer, undefined when shared
};
TORCH_MODULE(DinoHead);

/// The cross-entropy of DINO: the teacher's target distribution of each global view against
/// student log_softmax(s / student_temp) of every other view, averaged over pairs and batch.
/// `student` holds [V * B, K] (views in order, globals first), `targets` [G * B, K].
torch::Tensor dino_loss(const torch::Tensor& student, const torch::Tensor& targets,
                        double student_temp, int64_t views, int64_t global_views);

/// DINO's targets: softmax((teacher - center) / teacher_temp) of each row of `teacher` [N, K].
torch::Tensor centred_targets(const torch::Tensor& teacher, const torch::Tensor& center,
                              double teacher_temp);

/// DINOv2's sinkhorn_knopp_teacher: Q = exp(teacher / teacher_temp), [N, K] rows over the global
/// batch (all ranks' rows through `group`; nullptr: these rows), scaled to sum to 1, then
/// `iterations` times each prototype's column to 1 / K and each row to 1 / N; returned times N,
/// so each row is a distribution. In float32 at least, with the global maximum subtracted before
/// exp (which the normalisation cancels) so that sharp outputs cannot overflow; rows or prototypes
/// whose exp underflows entirely keep weight 0. Ranks may hold different numbers of rows.
torch::Tensor sinkhorn_knopp_targets(const torch::Tensor& teacher, double teacher_temp,
                                     int64_t iterations, Collectives* group);

/// DINOv2's KoLeo loss of features [N, D]: each row L2-normalised, its nearest other row by dot
/// product found, -mean log(||x_i - x_nn(i) + 1e-8|| + 1e-8) (PairwiseDistance's eps).
torch::Tensor koleo_loss(const torch::Tensor& features);

/// Teacher temperature at optimiser step `step` (0-based).
double teacher_temperature(const DinoOptions& options, int64_t step);
/// `from` rising linearly to `to` over `steps` optimiser steps, then `to` (at `step`, 0-based).
double warmed_up(double from, double to, int64_t steps, int64_t step);

/// DINOv2's KoLeo term of a student's features of its global crops, [crops x B, D] crop-major:
/// koleo_loss of each crop's rows over the global batch (gathered with gradient through
/// `group`, nullptr: these rows), summed over the crops. DINOv2 takes each GPU's own rows.
torch::Tensor koleo_over_crops(const torch::Tensor& features, int64_t crops, Collectives* group);

class DinoImpl : public MethodImpl {
 public:
  /// `student` and `teacher` are two backbones of the same layout; the teacher starts as a copy
  /// of the student and is never trained by gradients.
  DinoImpl(std::shared_ptr<BackboneImpl> student, std::shared_ptr<BackboneImpl> teacher,
           const DinoOptions& options);
  /// views: 2 global crops then `local_crops` local ones, each [B, C, H, W].
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 2 + options_.local_crops(); }
  int64_t global_view_count() const override { return 2; }
  void after_optimizer_step(int64_t step, int64_t total_steps) override;
  /// The teacher's backbone: DINO evaluates the teacher, which is the better encoder.
  std::shared_ptr<BackboneImpl> encoder() override { return teacher_; }
  /// The student backbone becomes the teacher's (the encoder's) weights again.
  void sync_encoder_copies() override;
  std::shared_ptr<BackboneImpl> student() { return student_; }
  const torch::Tensor& center() const { return center_; }

 private:
  DinoOptions options_;
  std::shared_ptr<BackboneImpl> student_, teacher_;
  DinoHead student_head_{nullptr}, teacher_head_{nullptr};
  MomentumPairs momentum_pairs_;  // teacher <- student
  torch::Tensor center_;
  MirroredInt steps_;
};

}  // namespace pretext::methods
