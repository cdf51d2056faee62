#pragma once

#include <ATen/Tensor.h>

namespace pretext::domains {

/// Macenko et al. (2009) stain estimation and normalisation for H&E, on RGB uint8-range float
/// images [3, H, W] (0-255).
///
/// The stain matrix is estimated from the optical densities OD = -log((I + 1) / 256) of pixels
/// whose mean OD over the channels exceeds `od_threshold`: the plane of the two largest principal
/// directions, and in it the directions at the `angle_percentile` and 100 - `angle_percentile`
/// percentiles of the angle; the one with the larger red OD is haematoxylin. Rows: H, E, each of
/// unit length, float64 [2, 3].
at::Tensor macenko_stain_matrix(const at::Tensor& rgb, double od_threshold = 0.15,
                                double angle_percentile = 99.0);

/// Stain concentrations [2, H, W] of `rgb` under `stains` (least squares on the OD).
at::Tensor stain_concentrations(const at::Tensor& rgb, const at::Tensor& stains);

/// `rgb` re-rendered with the reference's stain matrix, each stain's concentrations scaled so
/// that their 99th percentile matches the reference's (`reference_max`, [2]).
at::Tensor macenko_normalise(const at::Tensor& rgb, const at::Tensor& reference_stains,
                             const at::Tensor& reference_max);

}  // namespace pretext::domains
