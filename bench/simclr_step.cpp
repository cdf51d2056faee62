// Training-step throughput of SimCLR (ResNet-18 small-image layout, width 0.25, 1 band, 28x28,
// batch 256) in pretext, beside the same model and step in PyTorch from Python, run in this same
// program and printed as a ratio. Images per second count source images (each gives two views).
//
//   build/bench_simclr_step [--threads 2] [--steps 20] [--rounds 3]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <torch/optim/sgd.h>
#include <torch/types.h>

#include "bench/side_by_side.h"
#include "methods/resnet.h"
#include "methods/simclr.h"
#include "pipelines/system.h"

namespace {

using namespace pretext;

constexpr int64_t kBatch = 256;
constexpr int64_t kSize = 28;

double pretext_images_per_s(int64_t steps, bool channels_last) {
  torch::manual_seed(0);
  auto backbone = std::make_shared<methods::ResNetImpl>(
      methods::ResNetOptions(18).in_channels(1).width_multiplier(0.25).small_stem(true));
  methods::SimClrImpl simclr(backbone, methods::SimClrOptions().temperature(0.2));
  if (channels_last) methods::to_channels_last(simclr);
  torch::optim::SGD optimizer(simclr.parameters(),
                              torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(1e-4));
  const auto format =
      channels_last ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  const std::vector<torch::Tensor> views = {
      torch::rand({kBatch, 1, kSize, kSize}).contiguous(format),
      torch::rand({kBatch, 1, kSize, kSize}).contiguous(format)};
  const auto step = [&] {
    auto out = simclr.step(views);
    optimizer.zero_grad();
    out.loss.backward();
    optimizer.step();
  };
  for (int i = 0; i < 3; ++i) step();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return kBatch * steps / seconds;
}

double python_images_per_s(int64_t threads, int64_t steps, bool channels_last) {
  const std::string command = "/usr/bin/python3 " PRETEXT_BENCH_DIR "/simclr_step.py --threads " +
                              std::to_string(threads) + " --steps " + std::to_string(steps) +
                              " --batch " + std::to_string(kBatch) + " --size " +
                              std::to_string(kSize) + (channels_last ? " --channels-last" : "");
  return bench::python_number(command, "images_per_s=");
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t threads = 2, steps = 20, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads") threads = std::atoll(argv[i + 1]);
    if (flag == "--steps") steps = std::atoll(argv[i + 1]);
    if (flag == "--rounds") rounds = std::max<long long>(1, std::atoll(argv[i + 1]));
  }
  pipelines::configure_threads(threads);
  pipelines::configure_allocator();  // as `pretext` runs
  const auto blas = pipelines::measure_blas();
  std::printf("SimCLR step, ResNet-18 small stem, width 0.25, 1x%ldx%ld, batch %ld, %ld threads\n",
              static_cast<long>(kSize), static_cast<long>(kSize), static_cast<long>(kBatch),
              static_cast<long>(threads));
  std::printf("BLAS: %s, %.0f GFLOP/s\n", blas.library.c_str(), blas.gflops);
  // pretext's trainer runs channels-last; Python users run the default layout. Both layouts are
  // measured on both sides, in alternating rounds (a busy machine drifts), and the median of the
  // rounds is reported.
  std::vector<double> ours, ours_plain, theirs, theirs_cl;
  for (int64_t round = 0; round < rounds; ++round) {
    ours.push_back(pretext_images_per_s(steps, true));
    ours_plain.push_back(pretext_images_per_s(steps, false));
    theirs.push_back(python_images_per_s(threads, steps, false));
    theirs_cl.push_back(python_images_per_s(threads, steps, true));
    if (theirs.back() <= 0 || theirs_cl.back() <= 0) {
      std::printf(
          "PyTorch (Python): not run (needs /usr/bin/python3 with python3-torch: "
          "scripts/install_deps.sh --bench)\n");
      return 1;
    }
  }
  const double a = median(ours), b = median(ours_plain), c = median(theirs), d = median(theirs_cl);
  std::printf("median of %ld rounds of %ld steps\n", static_cast<long>(rounds),
              static_cast<long>(steps));
  std::printf("%-44s %8.1f images/s\n", "pretext, as its trainer runs (channels-last)", a);
  std::printf("%-44s %8.1f images/s\n", "pretext, default layout", b);
  std::printf("%-44s %8.1f images/s\n", "PyTorch from Python, default layout", c);
  std::printf("%-44s %8.1f images/s\n", "PyTorch from Python, channels-last", d);
  std::printf("ratio pretext / PyTorch (as each runs by default): %.2f\n", a / c);
  std::printf("ratio pretext / PyTorch (same layout, channels-last): %.2f\n", a / d);
  std::printf("ratio pretext / PyTorch (same layout, default): %.2f\n", b / c);
  return 0;
}
