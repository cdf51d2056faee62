#pragma once

#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>

#include "base/fields.h"

namespace at {
class Generator;
}

namespace pretext::domains {

/// One view's augmentation, for any number of bands. Values are expected in [0, 1]-like ranges
/// (after the loader's value scaling); normalisation comes last.
///   Augment augment(AugmentOptions().size(32).blur_p(0.5));
struct AugmentOptions {
  /// Output side in pixels.
  TORCH_ARG(int64_t, size) = 32;
  /// Random resized crop: area fraction of the input in [crop_scale_min, crop_scale_max] and
  /// aspect ratio (width / height) log-uniform in [crop_ratio_min, crop_ratio_max].
  TORCH_ARG(double, crop_scale_min) = 0.2;
  TORCH_ARG(double, crop_scale_max) = 1.0;
  TORCH_ARG(double, crop_ratio_min) = 3.0 / 4.0;
  TORCH_ARG(double, crop_ratio_max) = 4.0 / 3.0;
  /// Probability of a left-right flip, and of an up-down flip.
  TORCH_ARG(double, hflip_p) = 0.5;
  TORCH_ARG(double, vflip_p) = 0.0;
  /// Probability of a rotation by a multiple of 90 degrees (1, 2 or 3 quarter turns, uniform).
  TORCH_ARG(double, rotate90_p) = 0.0;
  /// Probability of the intensity jitter; then brightness x * b, contrast around the sample's mean
  /// with factor c, and gamma x^g (x clamped at 0), with b, c, g uniform in [1 - s, 1 + s].
  TORCH_ARG(double, jitter_p) = 0.8;
  TORCH_ARG(double, brightness) = 0.4;
  TORCH_ARG(double, contrast) = 0.4;
  TORCH_ARG(double, gamma) = 0.2;
  /// Probability of a Gaussian blur with sigma uniform in [blur_sigma_min, blur_sigma_max] pixels
  /// of the output.
  TORCH_ARG(double, blur_p) = 0.5;
  TORCH_ARG(double, blur_sigma_min) = 0.1;
  TORCH_ARG(double, blur_sigma_max) = 1.0;
  /// Per-band normalisation (x - mean) / std; one value applies to every band.
  TORCH_ARG(std::vector<double>, mean) = {0.5};
  TORCH_ARG(std::vector<double>, std) = {0.25};

 public:
  void visit_fields(FieldVisitor& visit);
};

/// Per-sample random parameters of one batch, all float64 [B] on the CPU.
struct AugmentParams {
  at::Tensor crop_x, crop_y;               ///< crop centre, normalised [-1, 1] image coordinates
  at::Tensor crop_width, crop_height;      ///< crop half-extent as a fraction of the image side
  at::Tensor hflip, vflip;                 ///< 1 or 0
  at::Tensor quarter_turns;                ///< 0..3 counter-clockwise
  at::Tensor brightness, contrast, gamma;  ///< 1 where no jitter is applied
  at::Tensor blur_sigma;                   ///< 0 where no blur is applied
};

/// Batched augmentation with per-sample parameters drawn from a seeded generator. One code path
/// for CPU and GPU tensors: parameters are drawn on the CPU (so a seed gives the same views on
/// every device) and applied to the batch where it lives. Crop, flips and rotations are one
/// affine `grid_sample`; jitter is broadcast arithmetic; blur a grouped separable convolution.
class Augment {
 public:
  explicit Augment(AugmentOptions options);
  /// [B, C, H, W] -> [B, C, size, size].
  at::Tensor operator()(const at::Tensor& batch, at::Generator& generator) const;
  AugmentParams sample(int64_t batch_size, int64_t height, int64_t width,
                       at::Generator& generator) const;
  at::Tensor apply(const at::Tensor& batch, const AugmentParams& params) const;
  const AugmentOptions& options() const { return options_; }

 private:
  at::Tensor crop_flip_rotate(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor jitter(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor blur(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor normalise(const at::Tensor& batch) const;

  AugmentOptions options_;
};

/// Independently drawn views of every image: two for contrastive methods, one for masked image
/// modelling.
class ViewAugment {
 public:
  explicit ViewAugment(AugmentOptions options) : augment_(std::move(options)) {}
  /// The views of training step `step` of a run seeded with `seed`: the same on every run and
  /// every resume, with no generator state to carry.
  std::vector<at::Tensor> operator()(const at::Tensor& batch, uint64_t seed, int64_t step,
                                     int64_t count = 2) const;
  const Augment& augment() const { return augment_; }

 private:
  Augment augment_;
};

/// The normalisation alone, for evaluation: (x - mean) / std per band.
at::Tensor normalise(const at::Tensor& batch, const std::vector<double>& mean,
                     const std::vector<double>& std);

}  // namespace pretext::domains
