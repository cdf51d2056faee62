// 256x256 windows of 4 bands per second from large rasters: a tiled DEFLATE GeoTIFF and a
// Cloud-Optimised GeoTIFF of 20,480 x 20,480 pixels, read by pretext (float32, scale applied, with
// the validity mask) beside rasterio (Debian's python3-rasterio: read(window=...) + astype +
// scale) on the same files and windows in the same run, printed as ratios. Three window lists:
// random offsets, and windows on the 256-pixel block grid (what pretext's sampler reads: one block
// per window instead of four) for both sides. Then pretext's loader on every core against a pool
// of as many rasterio processes, and the peak memory of this process.
//
//   build/bench_raster_windows [--dir /tmp/pretext_bench_raster] [--windows 600]
#include <gdal.h>
#include <ogr_srs_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "bench/side_by_side.h"
#include "domains/sampler.h"
#include "domains/scenes.h"
#include "io/catalog.h"
#include "io/gdal_raster.h"
#include "io/loader.h"
#include "pipelines/system.h"

namespace {

using namespace pretext;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kSide = 20480;
constexpr int kBlock = 256;
constexpr int kBands = 4;
constexpr int64_t kCacheMb = 256;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// A Sentinel-2-like scene: uint16 reflectance x 10,000 of smooth fields plus sensor noise, scale
// 0.0001, 10 m UTM pixels. Written block row by block row.
void write_scene(const std::string& path) {
  const char* options[] = {"TILED=YES",        "BLOCKXSIZE=256", "BLOCKYSIZE=256",
                           "COMPRESS=DEFLATE", "BIGTIFF=YES",    nullptr};
  GDALDatasetH dataset = GDALCreate(GDALGetDriverByName("GTiff"), path.c_str(), kSide, kSide,
                                    kBands, GDT_UInt16, const_cast<char**>(options));
  if (!dataset) throw std::runtime_error(path + ": cannot create");
  double transform[6] = {300000, 10, 0, 5000000, 0, -10};
  GDALSetGeoTransform(dataset, transform);
  OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(srs, 32632);
  GDALSetSpatialRef(dataset, srs);
  OSRDestroySpatialReference(srs);
  for (int b = 1; b <= kBands; ++b) {
    GDALRasterBandH band = GDALGetRasterBand(dataset, b);
    GDALSetRasterScale(band, 0.0001);
    GDALSetRasterNoDataValue(band, 0);
  }
  // One row of blocks of every band at a time: each compressed block is written once.
  std::mt19937 random(7);
  std::normal_distribution<float> noise(0.f, 40.f);
  const size_t plane = static_cast<size_t>(kSide) * kBlock;
  std::vector<uint16_t> rows(plane * kBands);
  for (int y0 = 0; y0 < kSide; y0 += kBlock) {
    for (int b = 0; b < kBands; ++b)
      for (int y = 0; y < kBlock; ++y)
        for (int x = 0; x < kSide; ++x) {
          const float field =
              1500.f + 800.f * std::sin((x + 300.f * b) / 700.f) * std::cos((y0 + y) / 900.f) +
              noise(random);
          rows[plane * b + static_cast<size_t>(y) * kSide + x] =
              static_cast<uint16_t>(std::clamp(field, 1.f, 65535.f));
        }
    if (GDALDatasetRasterIO(dataset, GF_Write, 0, y0, kSide, kBlock, rows.data(), kSide, kBlock,
                            GDT_UInt16, kBands, nullptr, 0, 0, 0) != CE_None)
      throw std::runtime_error(path + ": write failed");
  }
  GDALClose(dataset);
}

void write_cog(const std::string& from, const std::string& path) {
  GDALDatasetH source = GDALOpen(from.c_str(), GA_ReadOnly);
  const char* options[] = {"COMPRESS=DEFLATE", "BLOCKSIZE=256", "BIGTIFF=YES",
                           "NUM_THREADS=ALL_CPUS", nullptr};
  GDALDatasetH cog = GDALCreateCopy(GDALGetDriverByName("COG"), path.c_str(), source, FALSE,
                                    const_cast<char**>(options), nullptr, nullptr);
  if (!cog) throw std::runtime_error(path + ": COG creation failed");
  GDALClose(cog);
  GDALClose(source);
}

std::vector<std::pair<int64_t, int64_t>> windows(int64_t count, bool aligned) {
  std::mt19937_64 random(aligned ? 11 : 13);
  std::uniform_int_distribution<int64_t> offset(0, kSide - kBlock);
  std::uniform_int_distribution<int64_t> block(0, kSide / kBlock - 1);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < count; ++i)
    out.emplace_back(aligned ? block(random) * kBlock : offset(random),
                     aligned ? block(random) * kBlock : offset(random));
  return out;
}

std::string write_list(const std::string& path,
                       const std::vector<std::pair<int64_t, int64_t>>& list) {
  std::ofstream out(path);
  for (const auto& [x, y] : list) out << x << " " << y << "\n";
  return path;
}

double pretext_windows_per_s(const std::string& path,
                             const std::vector<std::pair<int64_t, int64_t>>& list) {
  io::GdalRaster raster(path);
  const auto options = io::RasterReadOptions();
  const auto start = Clock::now();
  for (const auto& [x, y] : list) raster.read_window({x, y, kBlock, kBlock}, options);
  return static_cast<double>(list.size()) / seconds_since(start);
}

double rasterio_windows_per_s(const std::string& path, const std::string& list, int64_t processes) {
  return bench::python_number("/usr/bin/python3 " PRETEXT_BENCH_DIR
                              "/raster_windows.py --processes " +
                                  std::to_string(processes) + " --cache-mb " +
                                  std::to_string(kCacheMb) + " " + path + " " + list,
                              "windows_per_s ");
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "/tmp/pretext_bench_raster";
  int64_t count = 600;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else if (arg == "--windows" && i + 1 < argc) {
      count = std::atoll(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--dir DIR] [--windows N]\n", argv[0]);
      return 2;
    }
  }
  at::set_num_threads(1);
  pipelines::configure_allocator();
  io::set_gdal_cache_mb(kCacheMb);
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  fs::create_directories(dir + "/tiled");
  fs::create_directories(dir + "/cog");
  const std::string tiled = dir + "/tiled/scene.tif", cog = dir + "/cog/scene.tif";
  if (!fs::exists(tiled)) {
    std::printf("writing %s (%d x %d, %d bands, DEFLATE)\n", tiled.c_str(), kSide, kSide, kBands);
    write_scene(tiled + ".part.tif");
    fs::rename(tiled + ".part.tif", tiled);
  }
  if (!fs::exists(cog)) {
    std::printf("writing %s (COG with overviews)\n", cog.c_str());
    write_cog(tiled, cog + ".part.tif");
    fs::rename(cog + ".part.tif", cog);
  }
  const auto random_list = windows(count, false), aligned_list = windows(count, true);
  const auto random_txt = write_list(dir + "/random.txt", random_list);
  const auto aligned_txt = write_list(dir + "/aligned.txt", aligned_list);
  std::printf("%ld windows of 256 x 256 x %d bands per list; GDAL block cache %ld MiB\n\n",
              static_cast<long>(count), kBands, static_cast<long>(kCacheMb));
  std::printf("%-42s %10s %10s %8s\n", "windows/s, 1 thread / 1 process", "pretext", "rasterio",
              "ratio");
  for (const auto& [name, path] :
       {std::make_pair("tiled GeoTIFF", tiled), std::make_pair("COG", cog)}) {
    for (const auto& [kind, list, txt] :
         {std::make_tuple("random offsets", &random_list, random_txt),
          std::make_tuple("on the block grid", &aligned_list, aligned_txt)}) {
      // Each side reads the same windows once before measuring: the page cache is warm for both.
      pretext_windows_per_s(path, *list);
      const double ours = pretext_windows_per_s(path, *list);
      const double theirs = rasterio_windows_per_s(path, txt, 1);
      std::printf("%-42s %10.1f %10.1f %7.2fx\n", (std::string(name) + ", " + kind).c_str(), ours,
                  theirs, ours / theirs);
    }
    // pretext's training path: its window sampler (block grid) through the loader on every
    // core, against rasterio's random windows in a pool of as many processes.
    const auto start_map = Clock::now();
    auto scenes = std::make_shared<domains::SceneDataset>(
        io::Catalog::from_folder(fs::path(path).parent_path().string()),
        domains::SceneOptions().window_size(kBlock).min_valid_fraction(0.5));
    const double map_seconds = seconds_since(start_map);
    auto order = domains::EpochSampler(scenes->size(), 0).order(0);
    order.resize(static_cast<size_t>(std::min<int64_t>(count, scenes->size())));
    const auto start = Clock::now();
    {
      io::Loader loader(scenes, order, io::LoaderOptions().batch_size(16).workers(cores));
      while (loader.next()) {
      }
    }
    const double many = static_cast<double>(order.size()) / seconds_since(start);
    const double pool = rasterio_windows_per_s(path, random_txt, cores);
    const double pool_aligned = rasterio_windows_per_s(path, aligned_txt, cores);
    std::printf("%-42s %10.1f %10.1f %7.2fx  (rasterio on the block grid: %.1f, %.2fx)\n",
                (std::string(name) + ", " + std::to_string(cores) + " loader threads").c_str(),
                many, pool, many / pool, pool_aligned, many / pool_aligned);
    std::printf("  (validity map of the whole raster for the sampler: %.1f s, once per data set)\n",
                map_seconds);
  }
  std::printf(
      "\npeak RSS of this process over the whole run: %.1f MiB (the raster is %.1f GiB "
      "of uint16)\n",
      bench::status_mib("VmHWM:"), static_cast<double>(kSide) * kSide * kBands * 2 / (1 << 30));
  return 0;
}
