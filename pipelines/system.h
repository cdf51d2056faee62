#pragma once

#include <cstdint>
#include <string>

namespace pretext::pipelines {

/// Sets LibTorch's intra-op threads (0: every core) and returns the count. Debian's LibTorch
/// starts with one thread, which halves speed on two cores without a word.
int64_t configure_threads(int64_t requested);

/// Measured single-precision matrix-multiply speed of the BLAS LibTorch calls, in GFLOP/s, and
/// the library that provides sgemm_.
struct BlasReport {
  double gflops = 0.0;
  std::string library;
};
BlasReport measure_blas();

/// A warning for a BLAS this slow (netlib's reference BLAS runs at about 3 GFLOP/s where OpenBLAS
/// runs at about 160), or "" when it is fine.
std::string blas_warning(const BlasReport& report);

}  // namespace pretext::pipelines
