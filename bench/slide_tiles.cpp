// Tissue tiles per second from a large pyramidal slide: 256x256 RGB tiles at level 0 read by
// pretext on one thread and through its loader on every core, beside openslide-python (Debian's
// python3-openslide, read_region + convert("RGB") + numpy) on the same slide and tile list in the
// same run, printed as ratios.
//
// The slide (written once to --dir) is an Aperio-style SVS of 40,960 x 40,960 pixels at
// 0.25 µm/px, 256-pixel JPEG tiles (quality 90), levels downsampled by 4, with an elliptical
// patch of textured tissue on a white background.
//
//   build/bench_slide_tiles [--dir /tmp/pretext_bench_slide] [--tiles 3000]
#include <tiffio.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "bench/side_by_side.h"
#include "domains/sampler.h"
#include "domains/tiles.h"
#include "io/catalog.h"
#include "io/loader.h"
#include "io/slide.h"
#include "pipelines/system.h"

namespace {

using namespace pretext;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int64_t kSide = 40960;
constexpr int64_t kTile = 256;
constexpr double kMpp = 0.25;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// RGB uint8 [tile, tile, 3] of the tile at (column, row) of a level with `downsample`: white
// outside an ellipse, pink-purple texture inside.
torch::Tensor phantom_tile(int64_t column, int64_t row, int64_t downsample) {
  const auto options = torch::TensorOptions().dtype(torch::kFloat32);
  const auto y = (torch::arange(kTile, options) + row * kTile) * downsample;
  const auto x = (torch::arange(kTile, options) + column * kTile) * downsample;
  const auto dy = (y.view({kTile, 1}) - kSide / 2.0) / (0.42 * kSide);
  const auto dx = (x.view({1, kTile}) - kSide / 2.0) / (0.35 * kSide);
  const auto inside = (dy * dy + dx * dx) < 1;
  const auto texture =
      torch::sin(x.view({1, kTile}) * 0.05) * torch::cos(y.view({kTile, 1}) * 0.07);
  const auto noise = torch::rand({kTile, kTile}) * 30;
  std::vector<torch::Tensor> channels;
  const float tissue[3] = {190, 110, 170};
  for (int c = 0; c < 3; ++c)
    channels.push_back(
        torch::where(inside, tissue[c] + texture * 40 - noise, torch::full({kTile, kTile}, 242.f)));
  return torch::stack(channels, 2).clamp(0, 255).to(torch::kUInt8).contiguous();
}

void write_slide(const std::string& path) {
  TIFF* tiff = TIFFOpen(path.c_str(), "w8");  // BigTIFF: the level-0 data exceeds 4 GiB raw
  if (!tiff) throw std::runtime_error(path + ": TIFFOpen failed");
  for (int64_t downsample = 1; kSide / downsample >= kTile; downsample *= 4) {
    const int64_t side = kSide / downsample;
    TIFFSetField(tiff, TIFFTAG_SUBFILETYPE, downsample == 1 ? 0 : FILETYPE_REDUCEDIMAGE);
    TIFFSetField(tiff, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(side));
    TIFFSetField(tiff, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(side));
    TIFFSetField(tiff, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tiff, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(tiff, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tiff, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(tiff, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(kTile));
    TIFFSetField(tiff, TIFFTAG_TILELENGTH, static_cast<uint32_t>(kTile));
    TIFFSetField(tiff, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
    TIFFSetField(tiff, TIFFTAG_JPEGQUALITY, 90);
    if (downsample == 1) {
      const std::string description = "Aperio Image Library v11.2.1 \n" + std::to_string(kSide) +
                                      "x" + std::to_string(kSide) + " [0,0 " +
                                      std::to_string(kSide) + "x" + std::to_string(kSide) +
                                      "] (256x256) JPEG/RGB Q=90|AppMag = "
                                      "40|MPP = 0.25";
      TIFFSetField(tiff, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
    }
    for (int64_t row = 0; row < side / kTile; ++row)
      for (int64_t column = 0; column < side / kTile; ++column) {
        auto pixels = phantom_tile(column, row, downsample);
        if (TIFFWriteTile(tiff, pixels.data_ptr<uint8_t>(), static_cast<uint32_t>(column * kTile),
                          static_cast<uint32_t>(row * kTile), 0, 0) < 0)
          throw std::runtime_error("TIFFWriteTile failed");
      }
    TIFFWriteDirectory(tiff);
  }
  TIFFClose(tiff);
}

double python_tiles_per_s(const std::string& slide, const std::string& list, int64_t processes) {
  const std::string command = "/usr/bin/python3 " PRETEXT_BENCH_DIR "/slide_tiles.py --processes " +
                              std::to_string(processes) + " " + slide + " " + list;
  return bench::python_number(command, "tiles_per_s ");
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/pretext_bench_slide";
  int64_t count = 3000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (arg == "--tiles" && i + 1 < argc) {
      count = std::atoll(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--tiles N]\n", argv[0]);
      return 2;
    }
  }
  at::set_num_threads(1);
  pipelines::configure_allocator();
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  fs::create_directories(dir);
  const std::string slide_path = dir + "/phantom_40960.svs";
  if (!fs::exists(slide_path)) {
    std::printf("writing %s (%ld x %ld)\n", slide_path.c_str(), static_cast<long>(kSide),
                static_cast<long>(kSide));
    write_slide(slide_path + ".part");
    fs::rename(slide_path + ".part", slide_path);
  }
  // The tissue tiles pretext would train on, a seeded random subset of them for both sides.
  io::Catalog catalog = io::Catalog::from_folder(dir, io::is_slide);
  auto tiles = std::make_shared<domains::TileDataset>(
      catalog, domains::TileDatasetOptions().tissue(
                   domains::TissueOptions().microns_per_pixel(kMpp).tile_size(kTile)));
  auto order = domains::EpochSampler(tiles->size(), 0).order(0);
  order.resize(static_cast<size_t>(std::min<int64_t>(count, tiles->size())));
  const std::string list = dir + "/tiles.txt";
  {
    std::ofstream out(list);
    for (const int64_t i : order) {
      const auto path = tiles->item(i).path;
      out << std::stoll(path.substr(path.find("#x=") + 3)) << " "
          << std::stoll(path.substr(path.find(",y=") + 3)) << "\n";
    }
  }
  std::printf("%s: %ld tissue tiles of 256 px at 0.25 µm/px; %zu of them read by each side\n\n",
              tiles->summary().c_str(), static_cast<long>(tiles->size()), order.size());

  // Both sides find the slide's bytes in the page cache.
  {
    std::ifstream in(slide_path, std::ios::binary);
    std::vector<char> buffer(1 << 22);
    while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()))) {
    }
  }
  // One thread: the same reads a training loop makes, tile by tile.
  auto start = Clock::now();
  for (const int64_t i : order) tiles->get(i);
  const double one = static_cast<double>(order.size()) / seconds_since(start);
  const double py_one = python_tiles_per_s(slide_path, list, 1);
  start = Clock::now();
  {
    io::Loader loader(tiles, order, io::LoaderOptions().batch_size(32).workers(cores));
    while (loader.next()) {
    }
  }
  const double many = static_cast<double>(order.size()) / seconds_since(start);
  const double py_many = python_tiles_per_s(slide_path, list, cores);
  std::printf("%-34s %12s %16s %8s\n", "tiles/s (256 px RGB)", "pretext", "openslide-python",
              "ratio");
  std::printf("%-34s %12.1f %16.1f %7.2fx\n", "1 thread / 1 process", one, py_one, one / py_one);
  std::printf("%-34s %12.1f %16.1f %7.2fx\n",
              (std::to_string(cores) + " loader threads / processes").c_str(), many, py_many,
              many / py_many);
  std::printf("pretext scaling: %.2fx on %ld threads\n", many / one, static_cast<long>(cores));
  // Level 0 alone is 4.7 GiB of RGB; what a reader keeps must not grow with it.
  std::printf("peak RSS of this process over the whole run: %.1f MiB\n",
              bench::status_mib("VmHWM:"));
  return 0;
}
