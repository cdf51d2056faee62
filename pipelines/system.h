#pragma once

#include <cstdint>
#include <string>

#include <c10/core/Device.h>

namespace pretext::pipelines {

/// Sets LibTorch's intra-op threads (0: every core, shared among `processes` on this machine: the
/// data-parallel ranks) and returns the count. Debian's LibTorch starts with one thread, which
/// halves speed on two cores without a word.
int64_t configure_threads(int64_t requested, int64_t processes = 1);

/// The LibTorch pretext runs on and what it computes with, for --version and run.log:
/// "LibTorch 1.13.0, CPU only" or "LibTorch 2.6.0, CUDA 12.4, cuDNN 9.1, 1 GPU: NVIDIA H200
/// (139 GiB)".
std::string torch_summary();

/// For a CUDA device: TF32 for fp32 matrix multiplies and convolutions, and cuDNN's benchmark
/// mode, both on or off (run.tf32). Nothing on the CPU.
void configure_cuda(bool tf32);

/// The most memory tensors on `device` held at once since the last reset, in bytes, as the
/// caching allocator counts it (torch.cuda.max_memory_allocated); 0 on the CPU.
int64_t peak_device_memory(const c10::Device& device);
void reset_peak_device_memory(const c10::Device& device);

/// Keeps freed tensor memory in the process heap instead of returning it to the kernel after
/// every step: glibc serves each large tensor with a fresh mmap by default, and the page faults of
/// touching it again cost about 5% of a small model's training step on 2 cores.
void configure_allocator();

/// The BLAS LibTorch's Linear/matmul call: the library that provides sgemm_, which optimised
/// implementation it is when it says, and its measured single-precision matrix-multiply speed.
struct BlasReport {
  std::string library;
  std::string implementation;  ///< "OpenBLAS", "BLIS", "MKL", or "" when the library does not say
  double gflops = 0.0;
};
BlasReport measure_blas();

/// A warning when the BLAS is no known optimised implementation and measures slow (netlib's
/// reference BLAS runs at about 3 GFLOP/s where OpenBLAS runs at about 160), or "". A known
/// implementation is never flagged: on a busy machine any BLAS can measure slow.
std::string blas_warning(const BlasReport& report);

}  // namespace pretext::pipelines
