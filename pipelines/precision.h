#pragma once

#include <cstdint>
#include <vector>

#include <c10/core/ScalarType.h>
#include <torch/types.h>

#include "base/fields.h"

namespace pretext::pipelines {

/// What a training step computes in (run.precision): fp32 throughout, or bf16 / fp16 where
/// autocast casts (convolutions, matrix multiplies; softmax, norms and losses stay fp32). Weights,
/// optimiser state, EMA teachers, DINO's centre, MoCo's queue and batch-norm statistics stay fp32
/// either way. fp16's narrow range needs the loss scaled (LossScale); bf16 has fp32's range.
enum class Precision { kFp32, kBf16, kFp16 };
inline const EnumNames<Precision>& field_names(Precision) {
  static const EnumNames<Precision> names = {
      {"fp32", Precision::kFp32}, {"bf16", Precision::kBf16}, {"fp16", Precision::kFp16}};
  return names;
}

/// The dtype autocast computes in (kFloat for fp32).
c10::ScalarType compute_dtype(Precision precision);

/// fp16's dynamic loss scaling, as PyTorch's GradScaler with its defaults: the loss is multiplied
/// by `scale` before backward so that small gradients do not underflow in half precision, the
/// gradients are divided by it before clipping and the step, a step whose gradients hold an inf
/// or NaN is skipped and halves the scale, and `kGrowthInterval` finite steps in a row double it.
/// Part of the train state, so a resumed run scales as the straight one.
struct LossScale {
  static constexpr double kInitial = 65536.0;  // 2^16
  static constexpr int64_t kGrowthInterval = 2000;
  double scale = kInitial;
  int64_t good_steps = 0;  ///< finite steps in a row since the scale last changed
};

/// Divides every defined gradient of `parameters` by `scale` in place; whether all are finite.
bool unscale_gradients(const std::vector<torch::Tensor>& parameters, double scale);

/// The scale after a step whose gradients were `finite` or not.
void update_loss_scale(LossScale& state, bool finite,
                       int64_t growth_interval = LossScale::kGrowthInterval);

}  // namespace pretext::pipelines
