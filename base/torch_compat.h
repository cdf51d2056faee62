#pragma once

// What differs between the LibTorch versions pretext builds against: Debian 12's 1.13 and the
// 2.x of Debian 13, the official downloads and pip wheels. Every version test is in this file.

#include <cmath>
#include <string>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>
#include <torch/version.h>

// LibTorch 2.4 made autocast's switches device-generic and deprecated the per-device ones.
#define PRETEXT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||          \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#if PRETEXT_TORCH_AT_LEAST(2, 0)
#include <ATen/ops/scaled_dot_product_attention.h>
#endif

namespace pretext::compat {

/// "1.13.0", "2.6.0", ...
inline std::string torch_version() { return TORCH_VERSION; }

/// softmax(q kᵀ / sqrt(d)) v over [B, heads, N, d]: PyTorch's fused kernel from 2.0 (flash or
/// memory-efficient attention on a GPU, no [N, N] matrix kept for backward), the plain product
/// before. `weights`, when given, receives the softmax, which only the plain product computes.
inline at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            at::Tensor* weights = nullptr) {
#if PRETEXT_TORCH_AT_LEAST(2, 0)
  if (!weights) return at::scaled_dot_product_attention(q, k, v);
#endif
  const auto softmax = (q * (1.0 / std::sqrt(static_cast<double>(q.size(-1)))))
                           .matmul(k.transpose(-2, -1))
                           .softmax(-1);
  if (weights) *weights = softmax;
  return softmax.matmul(v);
}

/// TF32 tensor cores for fp32 matrix multiplies (cuBLAS) and convolutions (cuDNN), on or off.
inline void allow_tf32(bool on) {
  at::globalContext().setAllowTF32CuBLAS(on);
  at::globalContext().setAllowTF32CuDNN(on);
}

/// TF32 off while it lives, the previous settings back after: evaluation (k-NN similarities,
/// linear probes) computes in exact fp32, so its numbers do not depend on the device.
class ExactFp32 {
 public:
  ExactFp32()
      : cublas_(at::globalContext().allowTF32CuBLAS()),
        cudnn_(at::globalContext().allowTF32CuDNN()) {
    allow_tf32(false);
  }
  ~ExactFp32() {
    at::globalContext().setAllowTF32CuBLAS(cublas_);
    at::globalContext().setAllowTF32CuDNN(cudnn_);
  }
  ExactFp32(const ExactFp32&) = delete;
  ExactFp32& operator=(const ExactFp32&) = delete;

 private:
  bool cublas_, cudnn_;
};

/// Autocast on `device` (CPU or CUDA) while it lives, computing eligible ops in `dtype` (the
/// Python `with torch.autocast(device, dtype)`); the previous state comes back after, and the
/// cast-weight cache is cleared when the outermost one ends.
class Autocast {
 public:
  Autocast(c10::DeviceType device, c10::ScalarType dtype)
      : device_(device), was_enabled_(enabled(device)), previous_dtype_(dtype_of(device)) {
    set(device, true, dtype);
    at::autocast::increment_nesting();
  }
  ~Autocast() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set(device_, was_enabled_, previous_dtype_);
  }
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

  static bool enabled(c10::DeviceType device) {
#if PRETEXT_TORCH_AT_LEAST(2, 4)
    return at::autocast::is_autocast_enabled(device);
#else
    return device == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                           : at::autocast::is_cpu_enabled();
#endif
  }

 private:
  static c10::ScalarType dtype_of(c10::DeviceType device) {
#if PRETEXT_TORCH_AT_LEAST(2, 4)
    return at::autocast::get_autocast_dtype(device);
#else
    return device == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                           : at::autocast::get_autocast_cpu_dtype();
#endif
  }
  static void set(c10::DeviceType device, bool on, c10::ScalarType dtype) {
#if PRETEXT_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(device, on);
    at::autocast::set_autocast_dtype(device, dtype);
#else
    if (device == c10::DeviceType::CUDA) {
      at::autocast::set_enabled(on);
      at::autocast::set_autocast_gpu_dtype(dtype);
    } else {
      at::autocast::set_cpu_enabled(on);
      at::autocast::set_autocast_cpu_dtype(dtype);
    }
#endif
  }

  c10::DeviceType device_;
  bool was_enabled_;
  c10::ScalarType previous_dtype_;
};

}  // namespace pretext::compat
