#include "tests/io/test_data.h"

#include <gdal.h>
#include <ogr_srs_api.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include <torch/types.h>

#include "base/errors.h"
#include "io/gdal_raster.h"

namespace pretext::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/pretext_test_XXXXXX";
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void write_raster(const std::string& path, const torch::Tensor& pixels, const std::string& driver,
                  bool uint16) {
  io::init_gdal();
  const auto values = pixels.to(torch::kFloat32).contiguous();
  const int bands = static_cast<int>(values.size(0));
  const int height = static_cast<int>(values.size(1));
  const int width = static_cast<int>(values.size(2));
  const GDALDataType type = uint16 ? GDT_UInt16 : GDT_Byte;
  GDALDatasetH memory =
      GDALCreate(GDALGetDriverByName("MEM"), "", width, height, bands, type, nullptr);
  if (GDALDatasetRasterIO(memory, GF_Write, 0, 0, width, height,
                          const_cast<float*>(values.data_ptr<float>()), width, height, GDT_Float32,
                          bands, nullptr, 0, 0, 0) != CE_None)
    throw std::runtime_error("MEM write failed");
  const char* tiff_options[] = {"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE",
                                nullptr};
  const char* jpeg_options[] = {"QUALITY=100", nullptr};
  char** options = nullptr;
  if (driver == "GTiff") options = const_cast<char**>(tiff_options);
  if (driver == "JPEG") options = const_cast<char**>(jpeg_options);
  GDALDatasetH out = GDALCreateCopy(GDALGetDriverByName(driver.c_str()), path.c_str(), memory,
                                    FALSE, options, nullptr, nullptr);
  GDALClose(memory);
  if (!out) throw std::runtime_error("cannot write " + path);
  GDALClose(out);
}

void write_scene(const std::string& path, const SceneSpec& scene) {
  GDALAllRegister();
  const int bands = static_cast<int>(scene.pixels.size(0));
  const int height = static_cast<int>(scene.pixels.size(1));
  const int width = static_cast<int>(scene.pixels.size(2));
  const char* options[] = {"TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32", "COMPRESS=DEFLATE",
                           nullptr};
  GDALDatasetH dataset = GDALCreate(GDALGetDriverByName("GTiff"), path.c_str(), width, height,
                                    bands, GDT_UInt16, const_cast<char**>(options));
  if (!dataset) throw std::runtime_error(path + ": GDALCreate failed");
  bool ok = true;
  if (scene.epsg) {
    auto transform = scene.transform;
    GDALSetGeoTransform(dataset, transform.data());
    OGRSpatialReferenceH srs = OSRNewSpatialReference(nullptr);
    OSRImportFromEPSG(srs, scene.epsg);
    GDALSetSpatialRef(dataset, srs);
    OSRDestroySpatialReference(srs);
  }
  for (const auto& [key, value] : scene.metadata)
    GDALSetMetadataItem(dataset, key.c_str(), value.c_str(), nullptr);
  const auto values = scene.pixels.round().to(torch::kInt32).contiguous();
  for (int b = 0; b < bands; ++b) {
    GDALRasterBandH band = GDALGetRasterBand(dataset, b + 1);
    if (b < static_cast<int>(scene.descriptions.size()))
      GDALSetDescription(band, scene.descriptions[static_cast<size_t>(b)].c_str());
    if (scene.nodata) GDALSetRasterNoDataValue(band, *scene.nodata);
    if (scene.scale != 1.0) GDALSetRasterScale(band, scene.scale);
    if (scene.offset != 0.0) GDALSetRasterOffset(band, scene.offset);
    ok = ok && GDALRasterIO(band, GF_Write, 0, 0, width, height, values[b].data_ptr<int32_t>(),
                            width, height, GDT_Int32, 0, 0) == CE_None;
  }
  if (scene.dataset_mask.defined()) {
    auto mask = scene.dataset_mask.to(torch::kUInt8).contiguous();
    ok = ok && GDALCreateDatasetMaskBand(dataset, GMF_PER_DATASET) == CE_None &&
         GDALRasterIO(GDALGetMaskBand(GDALGetRasterBand(dataset, 1)), GF_Write, 0, 0, width, height,
                      mask.data_ptr<uint8_t>(), width, height, GDT_Byte, 0, 0) == CE_None;
  }
  if (!scene.overviews.empty()) {
    std::vector<int> factors = scene.overviews;
    ok = ok && GDALBuildOverviews(dataset, "AVERAGE", static_cast<int>(factors.size()),
                                  factors.data(), 0, nullptr, nullptr, nullptr) == CE_None;
  }
  GDALClose(dataset);
  if (!ok) throw std::runtime_error(path + ": writing the test scene failed");
}

double ground_value(double easting, double northing) {
  return 2000 + 800 * std::sin((easting - 500000) / 900.0) +
         600 * std::cos((northing - 5e6) / 700.0);
}

at::Tensor ground_pixels(int epsg, const std::array<double, 6>& transform, int64_t width,
                         int64_t height) {
  OGRSpatialReferenceH from = OSRNewSpatialReference(nullptr),
                       utm = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(from, epsg);
  OSRImportFromEPSG(utm, 32632);
  OSRSetAxisMappingStrategy(from, OAMS_TRADITIONAL_GIS_ORDER);
  OSRSetAxisMappingStrategy(utm, OAMS_TRADITIONAL_GIS_ORDER);
  OGRCoordinateTransformationH to_utm = OCTNewCoordinateTransformation(from, utm);
  auto out = torch::empty({1, height, width}, torch::kFloat64);
  auto values = out.accessor<double, 3>();
  for (int64_t r = 0; r < height; ++r)
    for (int64_t c = 0; c < width; ++c) {
      double x = transform[0] + (static_cast<double>(c) + 0.5) * transform[1];
      double y = transform[3] + (static_cast<double>(r) + 0.5) * transform[5];
      OCTTransform(to_utm, 1, &x, &y, nullptr);
      values[0][r][c] = ground_value(x, y);
    }
  OCTDestroyCoordinateTransformation(to_utm);
  OSRDestroySpatialReference(from);
  OSRDestroySpatialReference(utm);
  return out;
}

SceneSpec wgs84_ground_scene(double west, double south, double east, double north, double step) {
  OGRSpatialReferenceH utm = OSRNewSpatialReference(nullptr),
                       wgs84 = OSRNewSpatialReference(nullptr);
  OSRImportFromEPSG(utm, 32632);
  OSRImportFromEPSG(wgs84, 4326);
  OSRSetAxisMappingStrategy(utm, OAMS_TRADITIONAL_GIS_ORDER);
  OSRSetAxisMappingStrategy(wgs84, OAMS_TRADITIONAL_GIS_ORDER);
  OGRCoordinateTransformationH to_wgs84 = OCTNewCoordinateTransformation(utm, wgs84);
  OCTTransform(to_wgs84, 1, &west, &north, nullptr);
  OCTTransform(to_wgs84, 1, &east, &south, nullptr);
  OCTDestroyCoordinateTransformation(to_wgs84);
  OSRDestroySpatialReference(utm);
  OSRDestroySpatialReference(wgs84);
  SceneSpec scene;
  scene.epsg = 4326;
  scene.transform = {west, step, 0, north, 0, -step};
  scene.pixels = ground_pixels(4326, scene.transform, std::llround((east - west) / step),
                               std::llround((north - south) / step));
  return scene;
}

void truncate_file(const std::string& path, double fraction) {
  const auto size = fs::file_size(path);
  fs::resize_file(path, static_cast<uintmax_t>(size * fraction));
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int run_command(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buffer[4096];
  output->clear();
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output->append(buffer, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string input_error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

std::string input_error_option(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& e) {
    return e.option();
  }
  return "no error";
}

}  // namespace pretext::testing
