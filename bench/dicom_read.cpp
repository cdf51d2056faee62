// DICOM slices per second, read and converted to Hounsfield-unit float32 tensors: pretext on one
// thread and through its loader on every core, beside pydicom (Debian's python3-pydicom with
// numpy) on the same files in the same run, printed as ratios. Then the peak memory of
// streaming the whole series through the loader, in a fresh process.
//
// The series is a CT-like phantom (a noisy soft-tissue disc in air), 512 slices of 512 x 512,
// 12 bits stored in 16, explicit little endian, written once to --dir.
//
//   build/bench_dicom_read [--dir /tmp/pretext_bench_dicom] [--slices 512] [--size 512]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "bench/side_by_side.h"
#include "domains/slices.h"
#include "io/catalog.h"
#include "io/dicom.h"
#include "io/loader.h"
#include "pipelines/system.h"
#include "tests/io/dicom_data.h"

namespace {

using namespace pretext;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void write_phantom(const std::string& dir, int64_t slices, int64_t size) {
  fs::create_directories(dir);
  const auto yy = torch::arange(size, torch::kFloat32).view({size, 1}) - size / 2.0;
  const auto xx = torch::arange(size, torch::kFloat32).view({1, size}) - size / 2.0;
  const auto body = (yy.pow(2) + xx.pow(2)) < (0.4 * size) * (0.4 * size);
  torch::manual_seed(0);
  for (int64_t s = 0; s < slices; ++s) {
    const auto hu = torch::where(body, 40 + 20 * torch::randn({size, size}),
                                 -1000 + 5 * torch::randn({size, size}));
    testing::DicomSpec spec;
    spec.stored = (hu + 1024).round().clamp(0, 4095).to(torch::kInt64);
    spec.z = 1.25 * static_cast<double>(s);
    spec.instance = static_cast<int>(s + 1);
    testing::write_dicom(dir + "/IM" + std::to_string(10000 + s) + ".dcm", spec);
  }
}

// Reads every byte once, so that both sides find the files in the page cache.
void warm_page_cache(const std::vector<std::string>& files) {
  std::vector<char> buffer(1 << 20);
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()))) {
    }
  }
}

double pretext_one_thread(const io::DicomSeries& series) {
  const auto start = Clock::now();
  double checksum = 0;
  for (const auto& slice : series.slices)
    checksum += io::read_dicom_frame(slice.path, slice.frame)[0][0][0].item<float>();
  const double seconds = seconds_since(start);
  if (checksum == 12345.678) std::printf(" ");  // keeps the reads observable
  return static_cast<double>(series.slices.size()) / seconds;
}

double pretext_loader(const std::string& dir, int64_t size, int64_t workers) {
  auto data = std::make_shared<domains::SliceDataset>(
      io::Catalog::from_folder(dir), domains::SliceDatasetOptions().image_size(size));
  std::vector<int64_t> order(static_cast<size_t>(data->size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  const auto start = Clock::now();
  io::Loader loader(
      data, order, io::LoaderOptions().batch_size(8).workers(workers).prefetch(4).drop_last(false));
  while (loader.next()) {
  }
  return static_cast<double>(order.size()) / seconds_since(start);
}

double pydicom(const std::vector<std::string>& files, int64_t processes) {
  std::string command = "/usr/bin/python3 " PRETEXT_BENCH_DIR "/dicom_read.py --processes " +
                        std::to_string(processes);
  for (const auto& f : files) command += " " + f;
  return bench::python_number(command, "slices_per_s ");
}

// The child: streams the series once through the loader and prints its peak memory.
int stream_memory(const std::string& dir, int64_t size, int64_t workers) {
  auto data = std::make_shared<domains::SliceDataset>(
      io::Catalog::from_folder(dir), domains::SliceDatasetOptions().image_size(size));
  std::vector<int64_t> order(static_cast<size_t>(data->size()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  const double before = bench::status_mib("VmRSS:");
  {
    io::Loader loader(
        data, order,
        io::LoaderOptions().batch_size(8).workers(workers).prefetch(4).drop_last(false));
    while (loader.next()) {
    }
  }
  std::printf("rss_before %.1f peak %.1f\n", before, bench::status_mib("VmHWM:"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/pretext_bench_dicom";
  int64_t slices = 512, size = 512;
  bool memory_child = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--dir" && i + 1 < argc)
      dir = argv[++i];
    else if (arg == "--slices" && i + 1 < argc)
      slices = std::atoll(argv[++i]);
    else if (arg == "--size" && i + 1 < argc)
      size = std::atoll(argv[++i]);
    else if (arg == "--stream-memory")
      memory_child = true;
    else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--slices N] [--size PIXELS]\n", argv[0]);
      return 2;
    }
  }
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  at::set_num_threads(1);
  pipelines::configure_allocator();  // as pretext's main does
  if (memory_child) return stream_memory(dir, size, cores);

  const std::string series_dir = dir + "/" + std::to_string(slices) + "x" + std::to_string(size);
  if (!fs::exists(series_dir + "/IM" + std::to_string(10000 + slices - 1) + ".dcm")) {
    std::printf("writing %ld slices of %ld x %ld to %s\n", static_cast<long>(slices),
                static_cast<long>(size), static_cast<long>(size), series_dir.c_str());
    write_phantom(series_dir, slices, size);
  }
  auto start = Clock::now();
  const auto scan =
      io::scan_dicom(io::Catalog::from_folder(series_dir).items(), io::OnBadFile::kFail);
  const double scan_seconds = seconds_since(start);
  const auto& series = scan.series.at(0);
  std::vector<std::string> files;
  for (const auto& s : series.slices) files.push_back(s.path);
  warm_page_cache(files);

  std::printf("series: %zu slices of %ld x %ld, %s; header scan %.0f files/s\n\n",
              series.slices.size(), static_cast<long>(size), static_cast<long>(size),
              series.format.transfer_syntax_name.c_str(), files.size() / scan_seconds);
  std::printf("%-34s %12s %12s %8s\n", "slices/s (HU float32)", "pretext", "pydicom", "ratio");
  const double one = pretext_one_thread(series);
  const double py_one = pydicom(files, 1);
  std::printf("%-34s %12.1f %12.1f %7.2fx\n", "1 thread / 1 process", one, py_one, one / py_one);
  const double many = pretext_loader(series_dir, size, cores);
  const double py_many = pydicom(files, cores);
  std::printf("%-34s %12.1f %12.1f %7.2fx\n",
              (std::to_string(cores) + " loader threads / processes").c_str(), many, py_many,
              many / py_many);
  std::printf("pretext scaling: %.2fx on %ld threads\n\n", many / one, static_cast<long>(cores));

  // popen runs a shell, so the path of this program is resolved here.
  const std::string self = fs::read_symlink("/proc/self/exe").string();
  FILE* pipe = popen(
      (self + " --stream-memory --dir " + series_dir + " --size " + std::to_string(size)).c_str(),
      "r");
  char line[256];
  double before = 0, peak = 0;
  while (pipe && std::fgets(line, sizeof line, pipe))
    std::sscanf(line, "rss_before %lf peak %lf", &before, &peak);
  if (pipe) pclose(pipe);
  const double slice_mib = static_cast<double>(size * size * 4) / (1 << 20);
  std::printf(
      "streaming all %zu slices (%.0f MiB of float32) through the loader (batch 8, "
      "prefetch 4, %ld workers): peak RSS %.1f MiB, %.1f MiB above the %.1f MiB before "
      "streaming (one slice: %.1f MiB)\n",
      series.slices.size(), slice_mib * series.slices.size(), static_cast<long>(cores), peak,
      peak - before, before, slice_mib);
  return 0;
}
