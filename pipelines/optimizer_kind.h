#pragma once

#include "base/fields.h"

namespace pretext::pipelines {

/// SGD (with momentum), Adam (L2 penalty in the gradient) or AdamW (decoupled weight decay).
enum class OptimizerKind { kSgd, kAdam, kAdamw };
inline const EnumNames<OptimizerKind>& field_names(OptimizerKind) {
  static const EnumNames<OptimizerKind> names = {{"sgd", OptimizerKind::kSgd},
                                                 {"adam", OptimizerKind::kAdam},
                                                 {"adamw", OptimizerKind::kAdamw}};
  return names;
}

}  // namespace pretext::pipelines
