#include "pipelines/precision.h"

namespace pretext::pipelines {

c10::ScalarType compute_dtype(Precision precision) {
  switch (precision) {
    case Precision::kBf16:
      return torch::kBFloat16;
    case Precision::kFp16:
      return torch::kHalf;
    case Precision::kFp32:
      break;
  }
  return torch::kFloat;
}

bool unscale_gradients(const std::vector<torch::Tensor>& parameters, double scale) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> finite;
  for (const auto& parameter : parameters) {
    auto grad = parameter.grad();
    if (!grad.defined()) continue;
    grad.mul_(1.0 / scale);
    finite.push_back(grad.isfinite().all());
  }
  // One read of the device for all parameters: the step or its skip is decided on the host.
  return finite.empty() || torch::stack(finite).all().item<bool>();
}

void update_loss_scale(LossScale& state, bool finite, int64_t growth_interval) {
  if (!finite) {
    state.scale *= 0.5;
    state.good_steps = 0;
  } else if (++state.good_steps >= growth_interval) {
    state.scale *= 2.0;
    state.good_steps = 0;
  }
}

}  // namespace pretext::pipelines
