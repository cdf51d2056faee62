#pragma once

#include "base/fields.h"

namespace pretext::pipelines {

/// SGD (with momentum), Adam (L2 penalty in the gradient), AdamW (decoupled weight decay) or LARS
/// (SGD with each weight's step scaled to its norm, as the SimCLR, BYOL and MAE references).
enum class OptimizerKind { kSgd, kAdam, kAdamw, kLars };
inline const EnumNames<OptimizerKind>& field_names(OptimizerKind) {
  static const EnumNames<OptimizerKind> names = {{"sgd", OptimizerKind::kSgd},
                                                 {"adam", OptimizerKind::kAdam},
                                                 {"adamw", OptimizerKind::kAdamw},
                                                 {"lars", OptimizerKind::kLars}};
  return names;
}

/// How train.grad_clip bounds the gradients: their global norm (torch.nn.utils.clip_grad_norm_),
/// or each parameter's own norm (DINO's utils.clip_gradients).
enum class ClipMode { kGlobal, kPerParameter };
inline const EnumNames<ClipMode>& field_names(ClipMode) {
  static const EnumNames<ClipMode> names = {{"global", ClipMode::kGlobal},
                                            {"per_parameter", ClipMode::kPerParameter}};
  return names;
}

/// The weight decay over training: constant, or a cosine from train.weight_decay to
/// train.weight_decay_end over all steps (DINO: 0.04 to 0.4).
enum class WeightDecaySchedule { kConstant, kCosine };
inline const EnumNames<WeightDecaySchedule>& field_names(WeightDecaySchedule) {
  static const EnumNames<WeightDecaySchedule> names = {{"constant", WeightDecaySchedule::kConstant},
                                                       {"cosine", WeightDecaySchedule::kCosine}};
  return names;
}

/// train.lr as written ("none"), or scaled by the global batch / 256 ("linear", as the MAE, DINO
/// and MoCo v3 references set their rates from a base rate).
enum class LrScaling { kNone, kLinear };
inline const EnumNames<LrScaling>& field_names(LrScaling) {
  static const EnumNames<LrScaling> names = {{"none", LrScaling::kNone},
                                             {"linear", LrScaling::kLinear}};
  return names;
}

/// A learning rate over the epochs: constant, or a cosine from the rate down to 0, set at the start
/// of each epoch (torch.optim.lr_scheduler.CosineAnnealingLR with T_max = epochs, eta_min = 0,
/// stepped once per epoch, as DINO's eval_linear).
enum class LrSchedule { kConstant, kCosine };
inline const EnumNames<LrSchedule>& field_names(LrSchedule) {
  static const EnumNames<LrSchedule> names = {{"constant", LrSchedule::kConstant},
                                              {"cosine", LrSchedule::kCosine}};
  return names;
}

}  // namespace pretext::pipelines
