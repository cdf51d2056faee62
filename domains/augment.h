#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>

#include "base/batch_slice.h"
#include "base/fields.h"

namespace at {
class Generator;
}

namespace pretext::domains {

/// How stored radiology values become [0, 1] before the jitter (AugmentOptions::window).
enum class WindowMode { kNone, kPresets, kPercentile };
inline const EnumNames<WindowMode>& field_names(WindowMode) {
  static const EnumNames<WindowMode> names = {{"none", WindowMode::kNone},
                                              {"presets", WindowMode::kPresets},
                                              {"percentile", WindowMode::kPercentile}};
  return names;
}

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
  /// Pathology stain jitter (Tellez et al.): probability of perturbing each sample's
  /// haematoxylin, eosin and DAB optical densities (colour deconvolution with Ruifrok and
  /// Johnston's matrix) by a scale in [1 - hed_scale, 1 + hed_scale] and a shift in
  /// [-hed_shift, hed_shift] per stain, then converting back to RGB. Expects RGB in [0, 1].
  TORCH_ARG(double, hed_p) = 0.0;
  TORCH_ARG(double, hed_scale) = 0.05;
  TORCH_ARG(double, hed_shift) = 0.05;
  /// Radiology intensity window, mapping stored values to [0, 1] before the jitter:
  ///   "none"        values are used as read (after data.value_scale);
  ///   "presets"     each sample takes one (level, width) pair of window_levels / window_widths
  ///                 at random (defaults: soft tissue 40/400, lung -600/1500, bone 400/1800 HU),
  ///                 evaluation takes the first;
  ///   "percentile"  level and width from each sample's window_percentiles (MR and other
  ///                 modalities without absolute units).
  /// Then the level moves by up to window_level_jitter x width and the width scales by a factor
  /// in [1 - window_width_jitter, 1 + window_width_jitter].
  TORCH_ARG(WindowMode, window) = WindowMode::kNone;
  TORCH_ARG(std::vector<double>, window_levels) = std::vector<double>{40, -600, 400};
  TORCH_ARG(std::vector<double>, window_widths) = std::vector<double>{400, 1500, 1800};
  TORCH_ARG(std::vector<double>, window_percentiles) = std::vector<double>{0.5, 99.5};
  TORCH_ARG(double, window_level_jitter) = 0.1;
  TORCH_ARG(double, window_width_jitter) = 0.2;
  /// MR bias field: probability of multiplying by a smooth field exp(p(x, y)), p a random
  /// second-order polynomial over the image with coefficients in [-strength, strength].
  TORCH_ARG(double, bias_field_p) = 0.0;
  TORCH_ARG(double, bias_field_strength) = 0.3;
  /// Probability of additive Gaussian noise of standard deviation noise_std (in [0, 1] units).
  TORCH_ARG(double, noise_p) = 0.0;
  TORCH_ARG(double, noise_std) = 0.03;
  /// Multispectral jitter: with probability band_jitter_p, each band of a sample is scaled by its
  /// own factor in [1 - band_scale, 1 + band_scale] and shifted by its own offset in
  /// [-band_shift, band_shift] (value units). After normalisation, each band of a sample is
  /// dropped (set to 0, its mean) with probability band_dropout_p, one band always kept.
  TORCH_ARG(double, band_jitter_p) = 0.0;
  TORCH_ARG(double, band_scale) = 0.1;
  TORCH_ARG(double, band_shift) = 0.0;
  TORCH_ARG(double, band_dropout_p) = 0.0;
  /// Temporal stacks: the batch holds `frames` acquisitions of each place along the bands
  /// ([B, frames x C, H, W]); view i is drawn from frame i mod frames, so the two views of a
  /// contrastive method are two dates of one place. Set by the pipeline from data.frames.
  TORCH_ARG(int64_t, frames) = 1;
  /// Multi-crop (DINO): side of the local views in pixels and their crop area fractions.
  TORCH_ARG(int64_t, local_size) = 96;
  TORCH_ARG(double, local_crop_scale_min) = 0.05;
  TORCH_ARG(double, local_crop_scale_max) = 0.4;
  /// Per-band normalisation (x - mean) / std; one value applies to every band.
  TORCH_ARG(std::vector<double>, mean) = {0.5};
  TORCH_ARG(std::vector<double>, std) = {0.25};

 public:
  void visit_fields(FieldVisitor& visit);
};

/// Per-sample random parameters of one batch, float64 [B] (or [B, k]) as drawn on the CPU.
struct AugmentParams {
  at::Tensor crop_x, crop_y;               ///< crop centre, normalised [-1, 1] image coordinates
  at::Tensor crop_width, crop_height;      ///< crop half-extent as a fraction of the image side
  at::Tensor hflip, vflip;                 ///< 1 or 0
  at::Tensor quarter_turns;                ///< 0..3 counter-clockwise
  at::Tensor brightness, contrast, gamma;  ///< 1 where no jitter is applied
  at::Tensor blur_sigma;                   ///< 0 where no blur is applied
  at::Tensor window_preset;                ///< index into window_levels (presets mode)
  at::Tensor window_shift;                 ///< level offset as a fraction of the width
  at::Tensor window_scale;                 ///< width factor
  at::Tensor bias;                         ///< [B, 5] coefficients of x, y, x^2, xy, y^2
  at::Tensor noise_std;                    ///< 0 where no noise is added
  uint64_t noise_seed = 0;                 ///< seeds the noise itself, drawn on the CPU
  at::Tensor hed_scale, hed_shift;         ///< [B, 3]: 1 and 0 where no stain jitter applies
  at::Tensor band_scale, band_shift;       ///< [B, C]: 1 and 0 where no band jitter applies
  at::Tensor band_keep;                    ///< [B, C]: 0 for dropped bands, else 1
  int64_t first_row = 0;                   ///< the first sample's row in the batch drawn for

  /// The same parameters on `device`, packed into one tensor for a single copy (pinned and
  /// non-blocking for CUDA: no host-device synchronisation per parameter).
  AugmentParams to(const c10::Device& device) const;
  /// The parameters of samples [offset, offset + count) (a rank's part of the global batch); the
  /// noise of each sample stays the one it has in the whole batch.
  AugmentParams rows(int64_t offset, int64_t count) const;
};

/// Batched augmentation with per-sample parameters drawn from a seeded generator. One code path
/// for CPU and GPU tensors: parameters are drawn on the CPU (so a seed gives the same views on
/// every device), copied once, and applied to the batch where it lives, with no read back: the
/// bias field, the noise (a counter-based hash of the seed and each value's position) and the
/// percentile window are computed on the batch's device. Crop, flips and rotations are one
/// affine `grid_sample`; jitter is broadcast arithmetic; blur a grouped separable convolution.
class Augment {
 public:
  explicit Augment(AugmentOptions options);
  /// [B, C, H, W] -> [B, C, size, size]; with `slice`, the batch is that part of a global batch
  /// and gets the parameters drawn for its rows of it.
  at::Tensor operator()(const at::Tensor& batch, at::Generator& generator,
                        const BatchSlice& slice = {}) const;
  AugmentParams sample(int64_t batch_size, int64_t height, int64_t width, at::Generator& generator,
                       int64_t channels = 1) const;
  at::Tensor apply(const at::Tensor& batch, const AugmentParams& params) const;
  const AugmentOptions& options() const { return options_; }

 private:
  at::Tensor crop_flip_rotate(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor bias_field(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor jitter(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor noise(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor stain(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor blur(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor band_jitter(const at::Tensor& batch, const AugmentParams& params) const;
  at::Tensor normalise(const at::Tensor& batch) const;

  AugmentOptions options_;
};

/// Independently drawn views of every image: two for contrastive methods, one for masked image
/// modelling.
class ViewAugment {
 public:
  /// Global views use `options`; local views (multi-crop) the same with size local_size and crop
  /// scales [local_crop_scale_min, local_crop_scale_max].
  explicit ViewAugment(AugmentOptions options);
  /// The views of training step `step` of a run seeded with `seed`: the same on every run and
  /// every resume, with no generator state to carry. The first `global_count` (all when
  /// negative) are global views, the rest local. With `joint_frames` every view is of the whole
  /// temporal stack, its frames cropped, flipped and rotated alike (SatMAE). With `slice` the
  /// batch is a rank's part of the global batch and gets the views one process of the global
  /// batch would make of those images.
  std::vector<at::Tensor> operator()(const at::Tensor& batch, uint64_t seed, int64_t step,
                                     int64_t count = 2, int64_t global_count = -1,
                                     bool joint_frames = false, const BatchSlice& slice = {}) const;
  const Augment& augment() const { return augment_; }

 private:
  Augment augment_, local_;
};

/// Standard normal values of the given shape from `seed` alone, the same bits of integer hashing
/// on every device (Box-Muller of two 32-bit hashes of each value's position and the seed), so
/// CPU and GPU add the same noise up to float rounding. Positions count from `first_position` (the
/// values of a slice of a larger tensor's draw).
at::Tensor seeded_normal(at::IntArrayRef sizes, uint64_t seed, const at::TensorOptions& options,
                         int64_t first_position = 0);

/// torch.quantile's linear interpolation along dim 1 of [B, N], for each of `fractions` in
/// [0, 1]: [fractions, B] float64. Unlike torch.quantile, any N (it refuses inputs of more than
/// 2^24 values, less than a batch of 224² images), and NaN sorts last instead of making the row
/// NaN.
at::Tensor row_quantiles(const at::Tensor& rows, const std::vector<double>& fractions);

/// The normalisation alone: (x - mean) / std per band.
at::Tensor normalise(const at::Tensor& batch, const std::vector<double>& mean,
                     const std::vector<double>& std);

/// The intensity window of `options` for each sample: preset `preset` (presets mode) or the
/// sample's percentiles, moved by `shift` x width and scaled by `scale` (all [B]); values mapped
/// to [0, 1]. The batch unchanged when the window is "none".
at::Tensor apply_window(const at::Tensor& batch, const AugmentOptions& options,
                        const at::Tensor& preset, const at::Tensor& shift, const at::Tensor& scale);

/// Colour deconvolution of RGB [B, 3, H, W] in [0, 1] into haematoxylin, eosin and DAB optical
/// densities (scikit-image's rgb2hed convention: OD normalised by -log(1e-6), no clipping, so
/// that hed_to_rgb inverts it exactly for values >= 1e-6), and back (clipped to [0, 1]).
at::Tensor rgb_to_hed(const at::Tensor& rgb);
at::Tensor hed_to_rgb(const at::Tensor& hed);

/// What evaluation, fine-tuning and export feed the encoder: the first window without jitter,
/// then the normalisation.
at::Tensor evaluation_view(const at::Tensor& batch, const AugmentOptions& options);

}  // namespace pretext::domains
