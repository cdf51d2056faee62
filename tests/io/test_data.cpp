#include "tests/io/test_data.h"

#include <gdal.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

void truncate_file(const std::string& path, double fraction) {
  const auto size = fs::file_size(path);
  fs::resize_file(path, static_cast<uintmax_t>(size * fraction));
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

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

}  // namespace pretext::testing
