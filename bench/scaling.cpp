// Data-parallel scaling, measured here and projected on paper.
//
// 1. SimCLR on a ResNet-18 (width 0.25, 32-pixel demo tiles) trained by the real binary as one
//    process and as `pretext launch -n 2` of the same global batch: images/s and the share of
//    each rank's time spent in collectives (communication and waiting); beside it PyTorch's
//    DistributedDataParallel (Gloo) on the same model and batch, 1 and 2 processes
//    (bench/scaling.py).
// 2. For every shipped config, the gradient bytes one step all-reduces, and what a ring
//    all-reduce of them takes, 2 (N - 1) / N x bytes / bandwidth, at 8 GPUs over NVLink and at
//    16 and 64 GPUs over 200 and 400 Gb/s InfiniBand: the step time at which communication
//    without overlap costs 10% (90% scaling efficiency).
//
//   build/bench_scaling [--steps 30] [--batch 64]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/side_by_side.h"
#include "pipelines/demo.h"
#include "pipelines/run_config.h"
#include "pipelines/run_dir.h"
#include "pipelines/training_metrics.h"

namespace {

namespace fs = std::filesystem;
using namespace pretext;

// A number that follows `prefix` in the run's log ("collectives took 1.23 s of ..."), or -1.
double logged(const std::string& run_dir, const std::string& prefix) {
  std::ifstream log(pipelines::RunDir(run_dir).log());
  std::string line;
  double value = -1;
  while (std::getline(log, line))
    if (const auto at = line.find(prefix); at != std::string::npos)
      value = std::atof(line.c_str() + at + prefix.size());
  return value;
}

// Images per second over the run's last logged interval (steady state, past the start-up).
double images_per_s(const std::string& run_dir) {
  const auto rows = pipelines::read_training_rows(pipelines::RunDir(run_dir).metrics());
  return rows.empty() ? 0.0 : rows.back().images_per_s;
}

struct Measured {
  double images_per_s = 0, collective_share = -1, gradient_mib = -1;
};

Measured train(const fs::path& dir, const std::string& tiles, int64_t ranks, int64_t global_batch,
               int64_t steps) {
  const std::string name = "ranks" + std::to_string(ranks);
  const fs::path config = dir / (name + ".yaml");
  std::ofstream(config) << "run:\n  dir: " << (dir / name).string() << "\n  seed: 0\n"
                        << "data:\n  root: " << tiles << "\n  image_size: 32\n  split: train\n"
                        << "model:\n  backbone: resnet18\n  width_multiplier: 0.25\n"
                        << "  small_stem: true\nmethod:\n  name: simclr\n"
                        << "augment:\n  size: 32\ntrain:\n  batch_size: " << global_batch / ranks
                        << "\n  max_steps: " << steps << "\n  lr: 0.3\n  log_every: " << steps / 2
                        << "\n  checkpoint_every: 0\n";
  const std::string command =
      std::string(PRETEXT_BINARY) +
      (ranks > 1 ? " launch -n " + std::to_string(ranks) + " -- pretrain" : " pretrain") +
      " --config " + config.string() + " > " + (dir / (name + ".out")).string() + " 2>&1";
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s (see %s.out)\n", command.c_str(), name.c_str());
    std::exit(1);
  }
  Measured m;
  m.images_per_s = images_per_s((dir / name).string());
  if (ranks > 1) {
    const double collectives = logged((dir / name).string(), "collectives took ");
    const double total = logged((dir / name).string(), " s of ");
    m.collective_share = total > 0 ? collectives / total : -1;
    m.gradient_mib = logged((dir / name).string(), "gradients all-reduced per step: ");
  }
  return m;
}

// Gradient bytes of a shipped config's method. Its input bands as the config names them
// (data.bands, data.band_names, one normalisation value per band), else 3: the first layer, the
// only one they change, is well under 1% of the bytes.
double gradient_bytes(const fs::path& config_path) {
  const auto config = pipelines::load_run_config(config_path.string(), {});
  const auto& named = config.data.scenes().band_names();
  const auto& mean = config.augment.mean();
  const int64_t bands = !config.data.bands().empty()
                            ? static_cast<int64_t>(config.data.bands().size())
                        : !named.empty()  ? static_cast<int64_t>(named.size())
                        : mean.size() > 1 ? static_cast<int64_t>(mean.size())
                                          : 3;
  const auto method = config.build_method(bands);
  double bytes = 0;
  for (const auto& p : method->parameters())
    if (p.requires_grad()) bytes += static_cast<double>(p.numel() * p.element_size());
  return bytes;
}

// Milliseconds a ring all-reduce of `bytes` takes on `ranks` ranks at `gigabytes_per_s`.
double ring_ms(double bytes, int64_t ranks, double gigabytes_per_s) {
  return 2.0 * static_cast<double>(ranks - 1) / static_cast<double>(ranks) * bytes /
         (gigabytes_per_s * 1e9) * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t steps = 30, global_batch = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--steps") steps = std::atoll(argv[i + 1]);
    if (flag == "--batch") global_batch = std::atoll(argv[i + 1]);
  }
  const fs::path dir = fs::temp_directory_path() / "pretext_bench_scaling";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string tiles = (dir / "tiles").string();
  pipelines::generate_demo_tiles(tiles, 100, 0);

  std::printf("SimCLR, ResNet-18 x0.25, 32 px, global batch %lld, %lld steps, this machine\n",
              static_cast<long long>(global_batch), static_cast<long long>(steps));
  std::fflush(stdout);
  const auto one = train(dir, tiles, 1, global_batch, steps);
  const auto two = train(dir, tiles, 2, global_batch, steps);
  const std::string python = "/usr/bin/python3 " + std::string(PRETEXT_BENCH_DIR) +
                             "/scaling.py --batch " + std::to_string(global_batch) + " --steps " +
                             std::to_string(steps);
  const double torch_one = bench::python_number(python + " --ranks 1", "images_per_s=");
  const double torch_two = bench::python_number(python + " --ranks 2", "images_per_s=");
  std::printf("%-34s %12s %12s %10s\n", "", "1 rank", "2 ranks", "2 / 1");
  std::printf("%-34s %12.1f %12.1f %10.2f\n", "pretext images/s (whole pipeline)", one.images_per_s,
              two.images_per_s, two.images_per_s / one.images_per_s);
  std::printf("%-34s %12.1f %12.1f %10.2f\n", "PyTorch DDP images/s (step only)", torch_one,
              torch_two, torch_two > 0 && torch_one > 0 ? torch_two / torch_one : 0.0);
  std::printf("pretext 2 ranks: %.1f%% of the time in collectives; %.2f MiB of gradients a step\n",
              100 * two.collective_share, two.gradient_mib);

  std::printf(
      "\nGradient bytes per step of the shipped configs, and the step time above which a "
      "ring all-reduce\nwithout overlap costs at most 10%% (90%% efficiency):\n");
  std::printf("%-26s %10s %14s %16s %16s\n", "config", "MiB", "8 GPUs NVLink", "16 GPUs IB 200",
              "64 GPUs IB 400");
  std::vector<fs::path> configs;
  for (const auto& entry : fs::directory_iterator(std::string(PRETEXT_SOURCE_DIR) + "/configs"))
    if (entry.path().extension() == ".yaml") configs.push_back(entry.path());
  std::sort(configs.begin(), configs.end());
  for (const auto& path : configs) {
    const double bytes = gradient_bytes(path);
    // NVLink ~450 GB/s per direction; InfiniBand 200 / 400 Gb/s = 25 / 50 GB/s.
    std::printf("%-26s %10.1f %11.2f ms %13.2f ms %13.2f ms\n", path.filename().c_str(),
                bytes / (1 << 20), 9 * ring_ms(bytes, 8, 450), 9 * ring_ms(bytes, 16, 25),
                9 * ring_ms(bytes, 64, 50));
  }
  std::printf(
      "(communication time x 9: a step at least that long spends at most 10%% "
      "communicating)\n");
  fs::remove_all(dir);
  return 0;
}
