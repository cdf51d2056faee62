#pragma once

#include <ATen/core/Tensor.h>

namespace pretext {

/// `tensor` on `device`; from the CPU to a GPU without waiting for the device: pinned and copied
/// non-blocking (a copy from pageable memory synchronises with it). The caching host allocator
/// keeps the pinned copy until the transfer is done, and its memory for the process after: for
/// the small tensors of a training step, not for one-off bulk copies (plain `.to()` there).
inline at::Tensor to_device(const at::Tensor& tensor, const c10::Device& device) {
  if (tensor.device() == device) return tensor;
  if (tensor.is_cpu() && device.is_cuda())
    return tensor.pin_memory().to(tensor.options().device(device), /*non_blocking=*/true);
  return tensor.to(device);
}

}  // namespace pretext
