#include "pipelines/system.h"

#include <dlfcn.h>
#include <malloc.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/types.h>

#include "base/torch_compat.h"

#ifdef PRETEXT_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace pretext::pipelines {

int64_t configure_threads(int64_t requested, int64_t processes) {
  int64_t threads = requested;
  if (threads <= 0)
    threads = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()) /
                                       std::max<int64_t>(1, processes));
  at::set_num_threads(static_cast<int>(threads));
  return threads;
}

namespace {

// CUDA's and cuDNN's version numbers as "major.minor": CUDA runtime 12040 is 12.4; cuDNN 9 counts
// major * 10000 (90100 is 9.1), earlier ones major * 1000 (8907 is 8.9).
std::string cuda_version(long number) {
  return std::to_string(number / 1000) + "." + std::to_string(number % 1000 / 10);
}
std::string cudnn_version(long number) {
  const long major_unit = number >= 90000 ? 10000 : 1000;
  return std::to_string(number / major_unit) + "." + std::to_string(number % major_unit / 100);
}

std::string gpu_names(int count) {
  std::string out = ", " + std::to_string(count) + (count == 1 ? " GPU" : " GPUs");
#ifdef PRETEXT_WITH_CUDA
  for (int i = 0; i < count; ++i) {
    const auto* properties = at::cuda::getDeviceProperties(i);
    out += std::string(i == 0 ? ": " : "; ") + properties->name + " (" +
           std::to_string(properties->totalGlobalMem >> 30) + " GiB)";
  }
#endif
  return out;
}

}  // namespace

std::string torch_summary() {
  std::string out = "LibTorch " + compat::torch_version();
  if (!at::globalContext().hasCUDA()) return out + ", CPU only";
  const auto& cuda = at::detail::getCUDAHooks();
  out += ", CUDA " + cuda_version(cuda.versionCUDART());
  if (cuda.hasCuDNN()) out += ", cuDNN " + cudnn_version(cuda.versionCuDNN());
  return out + gpu_names(cuda.getNumGPUs());
}

void configure_cuda(bool tf32) {
  if (!at::globalContext().hasCUDA()) return;
  compat::allow_tf32(tf32);
  at::globalContext().setBenchmarkCuDNN(tf32);
}

#ifdef PRETEXT_WITH_CUDA
namespace {
c10::DeviceIndex index_of(const c10::Device& device) {
  return device.has_index() ? device.index() : c10::cuda::current_device();
}
}  // namespace
#endif

int64_t peak_device_memory(const c10::Device& device) {
#ifdef PRETEXT_WITH_CUDA
  // Statistic 0 is the aggregate over small and large pools.
  if (device.is_cuda())
    return c10::cuda::CUDACachingAllocator::getDeviceStats(index_of(device))
        .allocated_bytes[0]
        .peak;
#endif
  (void)device;
  return 0;
}

void reset_peak_device_memory(const c10::Device& device) {
#ifdef PRETEXT_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(index_of(device));
#endif
  (void)device;
}

void configure_allocator() {
  // 32 MiB is glibc's largest mmap threshold; a larger trim threshold keeps up to 1 GiB of freed
  // memory for the next step.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

BlasReport measure_blas() {
  BlasReport report;
  if (void* symbol = dlsym(RTLD_DEFAULT, "sgemm_")) {
    Dl_info info;
    if (dladdr(symbol, &info) && info.dli_fname) {
      // libblas.so.3 is a Debian alternatives link; name the library it resolves to.
      std::error_code error;
      const auto real = std::filesystem::canonical(info.dli_fname, error);
      report.library = error ? info.dli_fname : real.string();
      // Optimised BLAS libraries export a version call of their own.
      if (void* handle = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD)) {
        for (const auto& [symbol_name, name] :
             {std::pair{"openblas_get_config", "OpenBLAS"},
              std::pair{"bli_info_get_version_str", "BLIS"}, std::pair{"MKL_Get_Version", "MKL"}})
          if (report.implementation.empty() && dlsym(handle, symbol_name))
            report.implementation = name;
        dlclose(handle);
      }
    }
  }
  constexpr int64_t kSide = 384;
  const auto a = torch::ones({kSide, kSide});
  const auto b = torch::ones({kSide, kSide});
  double best = 1e9;
  torch::mm(a, b);  // the first call starts the BLAS thread pool
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const auto c = torch::mm(a, b);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  report.gflops = 2.0 * kSide * kSide * kSide / std::max(best, 1e-9) / 1e9;
  return report;
}

std::string blas_warning(const BlasReport& report) {
  constexpr double kSlowGflops = 15.0;
  if (!report.implementation.empty() || report.gflops >= kSlowGflops) return "";
  return "matrix multiplies run at " + std::to_string(static_cast<int>(report.gflops)) +
         " GFLOP/s through " + (report.library.empty() ? "an unknown BLAS" : report.library) +
         ", likely the netlib reference BLAS; install an optimised one "
         "(scripts/install_deps.sh installs libopenblas0-openmp) for 20-50x faster training";
}

}  // namespace pretext::pipelines
