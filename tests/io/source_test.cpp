#include <gdal.h>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/gdal_raster.h"
#include "io/source.h"
#include "tests/io/test_data.h"

namespace pretext::io {
namespace {

using testing::TempDir;

torch::Tensor random_pixels(int64_t bands, int64_t height, int64_t width, double high) {
  torch::manual_seed(7);
  return torch::randint(0, static_cast<int64_t>(high) + 1, {bands, height, width}, torch::kFloat32);
}

// The window as GDAL's own RasterIO returns it, band by band in the file's type.
torch::Tensor gdal_window(const std::string& path, int x, int y, int w, int h) {
  GDALDatasetH dataset = GDALOpen(path.c_str(), GA_ReadOnly);
  EXPECT_NE(dataset, nullptr);
  const int bands = GDALGetRasterCount(dataset);
  auto out = torch::empty({bands, h, w}, torch::kFloat64);
  std::vector<uint16_t> buffer(static_cast<size_t>(w * h));
  for (int b = 0; b < bands; ++b) {
    EXPECT_EQ(GDALRasterIO(GDALGetRasterBand(dataset, b + 1), GF_Read, x, y, w, h, buffer.data(), w,
                           h, GDT_UInt16, 0, 0),
              CE_None);
    for (int i = 0; i < w * h; ++i) out[b][i / w][i % w] = buffer[static_cast<size_t>(i)];
  }
  GDALClose(dataset);
  return out;
}

TEST(GdalRaster, WindowsMatchThePixelsGdalReads) {
  TempDir dir;
  const std::string path = dir / "scene.tif";
  testing::write_raster(path, random_pixels(4, 48, 64, 10000), "GTiff", /*uint16=*/true);
  auto source = open(path);
  for (const auto& [x, y, w, h] : std::vector<std::array<int, 4>>{
           {0, 0, 64, 48}, {5, 7, 20, 13}, {63, 47, 1, 1}, {16, 16, 16, 16}, {30, 2, 33, 45}}) {
    const auto patch = source->read({x, y, w, h});
    EXPECT_EQ(patch.pixels.sizes(), (std::vector<int64_t>{4, h, w}));
    EXPECT_TRUE(torch::equal(patch.pixels.to(torch::kFloat64), gdal_window(path, x, y, w, h)))
        << "window " << x << "," << y << " " << w << "x" << h;
  }
  // Band selection keeps the requested order.
  const auto two = source->read({5, 7, 20, 13}, {3, 1});
  const auto all = gdal_window(path, 5, 7, 20, 13);
  EXPECT_TRUE(torch::equal(two.pixels[0].to(torch::kFloat64), all[2]));
  EXPECT_TRUE(torch::equal(two.pixels[1].to(torch::kFloat64), all[0]));
}

TEST(GdalRaster, ReportsGeometryTypeAndGeoreference) {
  TempDir dir;
  const std::string path = dir / "utm.tif";
  Georeference geo;
  geo.crs_wkt = crs_wkt_from_epsg(32632);
  geo.geo_transform = {500000.0, 10.0, 0.0, 5500000.0, 0.0, -10.0};
  write_geotiff(path, random_pixels(3, 20, 30, 60000), DataType::kUInt16, geo);
  auto source = open(path);
  const auto& info = source->info();
  EXPECT_EQ(info.format, "GTiff");
  EXPECT_EQ(info.width, 30);
  EXPECT_EQ(info.height, 20);
  ASSERT_EQ(info.bands.size(), 3u);
  EXPECT_EQ(info.bands[0].data_type, DataType::kUInt16);
  const auto georeference = source->georeference();
  ASSERT_TRUE(georeference.has_value());
  EXPECT_NE(georeference->crs_name.find("UTM zone 32N"), std::string::npos);
  EXPECT_DOUBLE_EQ(georeference->geo_transform[0], 500000.0);
  EXPECT_DOUBLE_EQ(georeference->geo_transform[5], -10.0);
}

TEST(GdalRaster, ReadsPlainPngAndJpeg) {
  TempDir dir;
  const auto pixels = random_pixels(3, 16, 24, 255);
  testing::write_raster(dir / "a.png", pixels, "PNG");
  testing::write_raster(dir / "b.jpg", torch::full({3, 16, 24}, 200.0), "JPEG");
  const auto png = open(dir / "a.png");
  EXPECT_EQ(png->info().format, "PNG");
  EXPECT_FALSE(png->georeference().has_value());
  EXPECT_TRUE(torch::equal(png->read({0, 0, 24, 16}).pixels, pixels));
  const auto jpeg = open(dir / "b.jpg");
  EXPECT_EQ(jpeg->info().format, "JPEG");
  // JPEG is lossy; a flat image survives within a level or two.
  EXPECT_LE((jpeg->read({0, 0, 24, 16}).pixels - 200).abs().max().item<float>(), 2.0f);
}

TEST(GdalRaster, ResampledReadKeepsAFlatImageFlat) {
  TempDir dir;
  testing::write_raster(dir / "flat.tif", torch::full({2, 64, 64}, 77.0), "GTiff");
  const auto patch = open(dir / "flat.tif")->read({0, 0, 64, 64, 16, 16});
  EXPECT_EQ(patch.pixels.sizes(), (std::vector<int64_t>{2, 16, 16}));
  EXPECT_TRUE(torch::allclose(patch.pixels, torch::full({2, 16, 16}, 77.0)));
}

TEST(Open, DetectsTheFormatFromContentNotName) {
  TempDir dir;
  testing::write_raster(dir / "really_a_png.tif", random_pixels(1, 8, 8, 255), "PNG");
  EXPECT_EQ(detect_format(dir / "really_a_png.tif"), Format::kPng);
  EXPECT_EQ(open(dir / "really_a_png.tif")->info().format, "PNG");
  testing::write_text(dir / "notes.png", "not an image at all");
  EXPECT_EQ(detect_format(dir / "notes.png"), Format::kUnknown);
}

void expect_input_error(const std::function<void()>& action,
                        const std::vector<std::string>& parts) {
  try {
    action();
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    for (const auto& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "'" << part << "' not in: " << e.what();
  }
}

TEST(Open, BadFilesGiveErrorsNamingFileAndReason) {
  TempDir dir;
  expect_input_error([&] { open(dir / "missing.tif"); }, {dir / "missing.tif", "cannot open"});
  testing::write_text(dir / "notes.txt", "hello");
  expect_input_error([&] { open(dir / "notes.txt"); }, {dir / "notes.txt", "not an image format"});

  const std::string tif = dir / "scene.tif";
  testing::write_raster(tif, random_pixels(3, 128, 128, 255), "GTiff");
  auto source = open(tif);
  expect_input_error([&] { source->read({120, 0, 16, 16}); }, {tif, "outside the image"});
  expect_input_error([&] { source->read({0, 0, 8, 8}, {4}); }, {tif, "band 4 requested"});
  expect_input_error(
      [&] {
        source->read({0, 0, 100000, 100000, 100000, 100000});
      },
      {tif, "outside"});
}

TEST(Open, TruncatedGeoTiffFailsWithGdalsReason) {
  TempDir dir;
  const std::string tif = dir / "cut.tif";
  testing::write_raster(tif, random_pixels(3, 128, 128, 255), "GTiff");
  testing::truncate_file(tif, 0.5);
  expect_input_error(
      [&] {
        auto source = open(tif);
        source->read({0, 0, 128, 128});
      },
      {tif, "GDAL"});
  testing::truncate_file(tif, 0.01);  // the header itself is gone
  expect_input_error([&] { open(tif)->read({0, 0, 128, 128}); }, {tif});
}

}  // namespace
}  // namespace pretext::io
