#pragma once

#include <memory>

#include <torch/arg.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/projection_head.h"

namespace pretext::methods {

/// The shape Barlow Twins and VICReg share: one backbone and projector for both views (each
/// view its own forward, so its own batch-norm statistics, as the references), and a loss of the
/// two views' projections over the whole global batch, which needs neither negatives nor a
/// momentum encoder and works with small batches.
class DecorrelationMethodImpl : public MethodImpl {
 public:
  /// Two views of the same images.
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  std::shared_ptr<BackboneImpl> encoder() override { return backbone_; }

 protected:
  /// `projector.in_dim` is set from the backbone.
  DecorrelationMethodImpl(std::shared_ptr<BackboneImpl> backbone, ProjectionHeadOptions projector);
  /// The loss of the global batch's projections z1, z2 [N, D] (on N ranks every rank computes
  /// it on the gathered projections, whose gradient returns to each rank's rows).
  virtual torch::Tensor loss(const torch::Tensor& z1, const torch::Tensor& z2) const = 0;

 private:
  std::shared_ptr<BackboneImpl> backbone_;
  ProjectionHead projector_{nullptr};
};

/// Barlow Twins (Zbontar et al. 2021): the cross-correlation matrix of the two views'
/// standardised projections is pulled towards the identity.
///   BarlowTwins barlow(backbone, BarlowTwinsOptions().projection_dim(2048));
struct BarlowTwinsOptions {
  /// Projector: `projection_layers` Linear layers, `projection_hidden_dim` wide with BN and ReLU,
  /// to `projection_dim` (the paper's 8192-8192-8192).
  TORCH_ARG(int64_t, projection_dim) = 8192;
  TORCH_ARG(int64_t, projection_hidden_dim) = 8192;
  TORCH_ARG(int64_t, projection_layers) = 3;
  /// The weight of the off-diagonal terms, the paper's lambda (0.0051, tuned at 8192
  /// dimensions). 0 scales it to the projector width, 0.0051 x 8192 / projection_dim, keeping
  /// the paper's balance between the D diagonal and D (D - 1) off-diagonal terms; at 512
  /// dimensions that pulled too hard on decorrelation (bench/fashion_mnist.py, README), so the
  /// paper's value is the default at every width.
  TORCH_ARG(double, off_diagonal_weight) = 0.0051;

 public:
  void visit_fields(FieldVisitor& visit);
  /// off_diagonal_weight, resolved.
  double lambda() const;
};

/// Barlow Twins' loss: C = z1n^T z2n / N of projections z1, z2 [N, D] standardised per
/// dimension over the batch (mean 0, biased variance 1 with eps 1e-5, as BatchNorm without
/// affine parameters); sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2.
torch::Tensor barlow_twins_loss(const torch::Tensor& z1, const torch::Tensor& z2, double lambda);

class BarlowTwinsImpl : public DecorrelationMethodImpl {
 public:
  BarlowTwinsImpl(std::shared_ptr<BackboneImpl> backbone, const BarlowTwinsOptions& options);

 private:
  torch::Tensor loss(const torch::Tensor& z1, const torch::Tensor& z2) const override;
  BarlowTwinsOptions options_;
};

/// VICReg (Bardes, Ponce, LeCun 2022): invariance (the views' projections close), variance (each
/// dimension's standard deviation over the batch at least 1) and covariance (dimensions
/// decorrelated) terms.
///   VicReg vicreg(backbone, VicRegOptions().projection_dim(2048));
struct VicRegOptions {
  /// Projector as Barlow Twins' (the paper's 8192-8192-8192).
  TORCH_ARG(int64_t, projection_dim) = 8192;
  TORCH_ARG(int64_t, projection_hidden_dim) = 8192;
  TORCH_ARG(int64_t, projection_layers) = 3;
  /// The paper's weights: lambda (invariance), mu (variance), nu (covariance).
  TORCH_ARG(double, invariance_weight) = 25;
  TORCH_ARG(double, variance_weight) = 25;
  TORCH_ARG(double, covariance_weight) = 1;

 public:
  void visit_fields(FieldVisitor& visit);
};

/// VICReg's loss of projections z1, z2 [N, D], as the reference: invariance_weight x MSE(z1, z2)
/// + variance_weight x mean over views and dimensions of relu(1 - sqrt(var + 1e-4)) (unbiased
/// variance over the batch) + covariance_weight x the squared off-diagonal covariances of each
/// view summed, over D.
torch::Tensor vicreg_loss(const torch::Tensor& z1, const torch::Tensor& z2,
                          const VicRegOptions& options);

class VicRegImpl : public DecorrelationMethodImpl {
 public:
  VicRegImpl(std::shared_ptr<BackboneImpl> backbone, const VicRegOptions& options);

 private:
  torch::Tensor loss(const torch::Tensor& z1, const torch::Tensor& z2) const override;
  VicRegOptions options_;
};

}  // namespace pretext::methods
