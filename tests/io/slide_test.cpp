#include <filesystem>
#include <fstream>
#include <functional>

#include <gtest/gtest.h>
#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/slide.h"
#include "tests/io/slide_data.h"
#include "tests/io/test_data.h"

namespace pretext::io {
namespace {
namespace F = torch::nn::functional;
using testing::SlideSpec;
using testing::TempDir;

torch::Tensor halve(const torch::Tensor& rgb) {
  return F::avg_pool2d(rgb.unsqueeze(0).to(torch::kFloat32), F::AvgPool2dFuncOptions(2))
      .squeeze(0)
      .round()
      .to(torch::kUInt8);
}

TEST(Slide, AperioGeometryMppAndPixels) {
  TempDir dir;
  SlideSpec spec;
  spec.level0 = testing::tissue_image(512, 384, 100, 50, 300, 250);
  write_slide(dir / "a.svs", spec);
  Slide slide(dir / "a.svs");
  const auto& info = slide.info();
  EXPECT_EQ(info.vendor, "aperio");
  ASSERT_EQ(info.levels.size(), 3u);
  EXPECT_EQ(info.levels[1].width, 192);
  EXPECT_EQ(info.levels[1].height, 256);
  EXPECT_DOUBLE_EQ(info.levels[2].downsample, 4.0);
  EXPECT_EQ(info.levels[0].tile_width, 64);
  EXPECT_DOUBLE_EQ(info.microns_per_pixel_x, 0.5);
  EXPECT_FALSE(info.microns_per_pixel_from_config);
  EXPECT_DOUBLE_EQ(info.objective_power, 20.0);
  EXPECT_TRUE(torch::equal(slide.read_region(40, 90, 0, 64, 48),
                           spec.level0.slice(1, 90, 138).slice(2, 40, 104)));
  EXPECT_TRUE(torch::equal(slide.read_level(1), halve(spec.level0)));
  // Reduced by 3 in strips: block means of level 0, the last 2 rows dropped.
  const auto blocks = spec.level0.slice(1, 0, 510).to(torch::kFloat64).view({3, 170, 3, 128, 3});
  EXPECT_TRUE(torch::equal(slide.read_level(0, 3), blocks.mean({2, 4}).round().to(torch::kUInt8)));
}

TEST(Slide, TilesAtATargetMppComeFromTheBestFinerLevel) {
  TempDir dir;
  SlideSpec spec;
  spec.level0 = testing::tissue_image(512, 512, 64, 64, 448, 448);
  write_slide(dir / "a.svs", spec);
  Slide slide(dir / "a.svs");
  EXPECT_EQ(slide.level_for(0.25), 0);  // finer than the slide: level 0
  EXPECT_EQ(slide.level_for(0.5), 0);
  EXPECT_EQ(slide.level_for(0.99), 0);
  EXPECT_EQ(slide.level_for(1.0), 1);
  EXPECT_EQ(slide.level_for(1.5), 1);
  EXPECT_EQ(slide.level_for(8.0), 2);
  // At the level's own mpp a tile is the level's pixels; coordinates are level-0 pixels.
  const auto level1 = halve(spec.level0);
  EXPECT_TRUE(
      torch::equal(slide.read_tile(128, 64, 1.0, 32), level1.slice(1, 32, 64).slice(2, 64, 96)));
  // Between levels: level 1 read over 48 pixels, area-averaged to 32.
  const auto expected =
      F::interpolate(
          level1.slice(1, 32, 80).slice(2, 64, 112).unsqueeze(0).to(torch::kFloat32),
          F::InterpolateFuncOptions().size(std::vector<int64_t>{32, 32}).mode(torch::kArea))
          .squeeze(0)
          .round()
          .to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(slide.read_tile(128, 64, 1.5, 32), expected));
}

TEST(Slide, OutsideTheScannedAreaIsWhiteNotBlack) {
  TempDir dir;
  SlideSpec spec;
  spec.level0 = testing::tissue_image(128, 128, 0, 0, 128, 128);
  write_slide(dir / "a.svs", spec);
  Slide slide(dir / "a.svs");
  const auto region = slide.read_region(96, 96, 0, 64, 64);  // three quarters outside
  EXPECT_TRUE(torch::equal(region.slice(1, 32, 64).slice(2, 32, 64),
                           torch::full({3, 32, 32}, 255, torch::kUInt8)));
  EXPECT_TRUE(torch::equal(region.slice(1, 0, 32).slice(2, 0, 32),
                           spec.level0.slice(1, 96, 128).slice(2, 96, 128)));
}

TEST(Slide, GenericTiffMppFromResolutionOrFromConfig) {
  TempDir dir;
  SlideSpec spec;
  spec.vendor = "generic";
  spec.microns_per_pixel = 0.25;
  spec.level0 = testing::tissue_image(256, 256, 0, 0, 128, 128);
  write_slide(dir / "with.tif", spec);
  Slide with(dir / "with.tif");
  EXPECT_EQ(with.info().vendor, "generic-tiff");
  EXPECT_NEAR(with.info().microns_per_pixel_x, 0.25, 1e-4);
  spec.microns_per_pixel = 0;
  write_slide(dir / "without.tif", spec);
  EXPECT_NE(testing::input_error_of([&] {
              Slide s(dir / "without.tif");
            }).find("states no microns per pixel (give a fallback resolution)"),
            std::string::npos);
  // The option that fixes it, for the config reader to name its key.
  EXPECT_EQ(testing::input_error_option([&] { Slide s(dir / "without.tif"); }),
            "fallback_microns_per_pixel");
  Slide fallback(dir / "without.tif", 0.5);
  EXPECT_TRUE(fallback.info().microns_per_pixel_from_config);
  EXPECT_DOUBLE_EQ(fallback.info().microns_per_pixel_x, 0.5);
}

TEST(Slide, BadSlidesAreReportedAndAFailedSlideIsNotReadAgain) {
  TempDir dir;
  testing::write_text(dir / "notes.svs", "not a slide");
  EXPECT_NE(testing::input_error_of([&] {
              Slide s(dir / "notes.svs");
            }).find(dir / "notes.svs: OpenSlide: not a slide format OpenSlide reads"),
            std::string::npos);
  // A TIFF that is not tiled.
  testing::write_raster(dir / "strips.tif", torch::full({3, 64, 64}, 200.0), "GTiff");
  EXPECT_NE(testing::input_error_of([&] {
              Slide s(dir / "strips.tif");
            }).find(dir / "strips.tif: OpenSlide: "),
            std::string::npos);
  // Level-0 tiles overwritten with garbage: reads fail part-way, then the slide stays failed.
  SlideSpec spec;
  spec.level0 = torch::randint(0, 256, {3, 512, 512}, torch::kInt64).to(torch::kUInt8);
  write_slide(dir / "corrupt.svs", spec);
  {
    std::fstream file(dir / "corrupt.svs", std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(std::filesystem::file_size(dir / "corrupt.svs") / 4));
    const std::string garbage(200000, '\x5a');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  Slide slide(dir / "corrupt.svs");
  std::string first = "no error";
  for (int64_t y = 0; y < 512 && first == "no error"; y += 64)
    for (int64_t x = 0; x < 512 && first == "no error"; x += 64)
      first = testing::input_error_of([&] { slide.read_region(x, y, 0, 64, 64); });
  EXPECT_NE(first.find(dir / "corrupt.svs: OpenSlide: reading 64x64 at level 0"), std::string::npos)
      << first;
  EXPECT_NE(testing::input_error_of([&] {
              slide.read_region(0, 0, 2, 16, 16);
            }).find("in an error state"),
            std::string::npos);
}

TEST(Slide, DirectTileDecodingGivesOpenSlidesPixels) {
  TempDir dir;
  for (const bool jpeg : {true, false})
    for (const char* vendor : {"aperio", "generic"}) {
      SlideSpec spec;
      spec.jpeg = jpeg;
      spec.vendor = vendor;
      spec.level0 = testing::tissue_image(512, 384, 40, 30, 400, 300);
      spec.level0.slice(0, 0, 1).slice(1, 100, 200).random_(0, 256);  // texture for the codec
      const std::string path = dir / (std::string(vendor) + (jpeg ? "_jpeg" : "_deflate") + ".tif");
      write_slide(path, spec);
      Slide direct(path, 0.5), composited(path, 0.5, /*direct_tiles=*/false);
      for (int64_t level = 0; level < 3; ++level) {
        const auto downsample = static_cast<int64_t>(direct.info().levels[level].downsample);
        const int64_t columns = direct.info().levels[level].width / 64;
        const int64_t rows = direct.info().levels[level].height / 64;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < columns; ++c) {
            const int64_t x = c * 64 * downsample, y = r * 64 * downsample;
            EXPECT_TRUE(torch::equal(direct.read_region(x, y, level, 64, 64),
                                     composited.read_region(x, y, level, 64, 64)))
                << path << " level " << level << " tile " << c << "," << r;
          }
      }
      EXPECT_EQ(direct.direct_reads(), 48 + 12 + 2) << path;  // every whole tile of 3 levels
      EXPECT_EQ(composited.direct_reads(), 0);
      // Part of one tile: decoded directly and cropped. Across tiles: OpenSlide composites.
      EXPECT_TRUE(torch::equal(direct.read_region(72, 80, 0, 48, 40),
                               composited.read_region(72, 80, 0, 48, 40)))
          << path;
      EXPECT_EQ(direct.direct_reads(), 48 + 12 + 2 + 1) << path;
      EXPECT_TRUE(torch::equal(direct.read_region(40, 40, 0, 48, 48),
                               composited.read_region(40, 40, 0, 48, 48)))
          << path;
      EXPECT_EQ(direct.direct_reads(), 48 + 12 + 2 + 1) << path;
    }
}

}  // namespace
}  // namespace pretext::io
