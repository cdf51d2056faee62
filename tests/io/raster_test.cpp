// Multispectral GeoTIFF reading: band choice, scale/offset, validity masks, overviews, windows in
// map coordinates, dates, and alignment of scenes in two CRSs through GDAL's warper. Files are
// written here with GDAL's C API directly, independent of the reader under test.
#include <cpl_string.h>
#include <gdal.h>

#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/acquisition_date.h"
#include "io/gdal_raster.h"
#include "tests/io/test_data.h"

namespace pretext::io {
namespace {

using testing::input_error_of;
using testing::SceneSpec;
using testing::TempDir;
using testing::write_scene;

torch::Tensor ramp(int64_t bands, int64_t height, int64_t width) {
  return (torch::arange(bands * height * width) % 5000 + 100).view({bands, height, width});
}

TEST(AcquisitionDate, ParsesTheWaysMetadataAndNamesWriteDates) {
  for (const char* text : {"2023-06-15", "2023:06:15 10:20:21", "20230615",
                           "2023-06-15T10:20:21.024Z", "2023/06/15"}) {
    const auto date = parse_date(text);
    ASSERT_TRUE(date) << text;
    EXPECT_EQ(date->iso(), "2023-06-15") << text;
    EXPECT_EQ(date->days(), 19523) << text;  // Python: date(2023,6,15) - date(1970,1,1)
  }
  EXPECT_EQ(parse_date("2000-03-01")->days(), 11017);
  EXPECT_EQ(parse_date("1969-12-31")->days(), -1);
  EXPECT_EQ(parse_date("2024-02-29")->days(), 19782);
  EXPECT_EQ(parse_date("2024-12-31")->day_of_year(), 366);
  EXPECT_EQ(parse_date("2023-03-01")->day_of_year(), 60);
  for (const char* text :
       {"2023-02-29", "2023-13-01", "2023-06-31", "202306151", "June 15", "2023-6-15", ""})
    EXPECT_FALSE(parse_date(text)) << text;
}

TEST(AcquisitionDate, FromTheFileNameByAPattern) {
  const std::string s2 = "/data/S2A_MSIL2A_20230615T102021_N0509_R065_T32TMT.tif";
  EXPECT_EQ(date_from_name(s2, R"(_(\d{8})T)").iso(), "2023-06-15");
  EXPECT_EQ(date_from_name("/x/tile_2021-01-02.tif", R"(\d{4}-\d{2}-\d{2})").iso(), "2021-01-02");
  const auto missing = input_error_of([&] { date_from_name("/x/tile.tif", R"(_(\d{8}))"); });
  EXPECT_NE(missing.find("/x/tile.tif"), std::string::npos) << missing;
  EXPECT_NE(missing.find("no date"), std::string::npos) << missing;
  const auto wrong = input_error_of([&] { date_from_name("/x/t_20231345.tif", R"(_(\d{8}))"); });
  EXPECT_NE(wrong.find("'20231345'"), std::string::npos) << wrong;
  EXPECT_NE(input_error_of([&] {
              date_from_name(s2, "(unclosed");
            }).find("the date pattern '(unclosed' is not a regular expression"),
            std::string::npos);
  EXPECT_EQ(testing::input_error_option([&] { date_from_name(s2, "(unclosed"); }), "date_pattern");
}

TEST(Raster, BandsByDescriptionWithScaleOffsetAndNodataMask) {
  TempDir dir;
  SceneSpec scene;
  scene.pixels = ramp(4, 40, 48);
  scene.pixels.slice(2, 0, 6).fill_(0);  // a nodata border on the left
  scene.nodata = 0;
  scene.descriptions = {"B02", "B03", "B04", "B08"};
  scene.scale = 0.0001;  // Sentinel-2 L2A: reflectance = (DN - 1000) / 10000
  scene.offset = -0.1;
  write_scene(dir / "s2.tif", scene);
  GdalRaster raster(dir / "s2.tif");
  ASSERT_EQ(raster.info().bands.size(), 4u);
  EXPECT_DOUBLE_EQ(raster.info().bands[3].scale, 0.0001);
  EXPECT_DOUBLE_EQ(raster.info().bands[3].offset, -0.1);
  EXPECT_EQ(raster.band_named("B08"), 4);
  const auto unknown = input_error_of([&] { raster.band_named("B8A"); });
  EXPECT_NE(unknown.find("'B8A'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("'B02'"), std::string::npos) << unknown;

  const auto patch = raster.read_window({2, 3, 20, 10}, RasterReadOptions().bands({4, 1}));
  ASSERT_EQ(patch.pixels.sizes(), (std::vector<int64_t>{2, 10, 20}));
  const auto stored = scene.pixels.slice(1, 3, 13).slice(2, 2, 22).to(torch::kFloat64);
  EXPECT_TRUE(
      torch::allclose(patch.pixels[0].to(torch::kFloat64), stored[3] * 0.0001 - 0.1, 1e-6, 1e-6));
  EXPECT_TRUE(
      torch::allclose(patch.pixels[1].to(torch::kFloat64), stored[0] * 0.0001 - 0.1, 1e-6, 1e-6));
  EXPECT_EQ(patch.band_names, (std::vector<std::string>{"B08", "B02"}));
  // Columns 2-5 of the file are nodata: the first 4 columns of the window are invalid.
  ASSERT_TRUE(patch.valid.defined());
  EXPECT_FALSE(patch.valid.slice(1, 0, 4).any().item<bool>());
  EXPECT_TRUE(patch.valid.slice(1, 4).all().item<bool>());
  // Raw reads keep the stored values.
  EXPECT_TRUE(torch::equal(raster.read({2, 3, 20, 10}).pixels[0].to(torch::kFloat64), stored[0]));
}

TEST(Raster, MaskBandOrFallbackNodataWhenTheFileHasNoNodata) {
  TempDir dir;
  SceneSpec masked;
  masked.pixels = ramp(2, 32, 32);
  masked.dataset_mask = torch::full({32, 32}, 255, torch::kUInt8);
  masked.dataset_mask.slice(0, 20).fill_(0);  // clouds in the bottom rows, from a mask band
  write_scene(dir / "masked.tif", masked);
  GdalRaster with_mask(dir / "masked.tif");
  auto patch = with_mask.read_window({0, 16, 32, 8}, RasterReadOptions());
  EXPECT_TRUE(patch.valid.slice(0, 0, 4).all().item<bool>());
  EXPECT_FALSE(patch.valid.slice(0, 4).any().item<bool>());

  SceneSpec plain;
  plain.pixels = ramp(2, 32, 32);
  plain.pixels[1][5][7] = 65535;  // the configured "no data" value in one band
  write_scene(dir / "plain.tif", plain);
  GdalRaster no_nodata(dir / "plain.tif");
  EXPECT_TRUE(no_nodata.read_window({0, 0, 32, 32}, RasterReadOptions()).valid.all().item<bool>());
  patch = no_nodata.read_window({0, 0, 32, 32}, RasterReadOptions().fallback_nodata(65535));
  EXPECT_EQ(patch.valid.logical_not().sum().item<int64_t>(), 1);
  EXPECT_FALSE(patch.valid[5][7].item<bool>());
}

TEST(Raster, CloudsFromAClassificationBandAreInvalid) {
  TempDir dir;
  SceneSpec scene;
  scene.pixels = ramp(3, 32, 32);
  scene.pixels[2].fill_(4);                   // band 3: Sentinel-2 SCL, 4 = vegetation
  scene.pixels[2].slice(0, 0, 10).fill_(9);   // cloud, high probability
  scene.pixels[2].slice(0, 10, 12).fill_(3);  // cloud shadow
  scene.pixels[2][20][5] = 8;                 // one pixel of medium-probability cloud
  write_scene(dir / "scl.tif", scene);
  GdalRaster raster(dir / "scl.tif");
  const auto patch = raster.read_window(
      {0, 0, 32, 32}, RasterReadOptions().bands({1, 2}).cloud_band(3).cloud_values({3, 8, 9, 10}));
  EXPECT_EQ(patch.pixels.size(0), 2);
  EXPECT_FALSE(patch.valid.slice(0, 0, 12).any().item<bool>());
  EXPECT_FALSE(patch.valid[20][5].item<bool>());
  EXPECT_EQ(patch.valid.slice(0, 12).logical_not().sum().item<int64_t>(), 1);
  // A binary cloud mask: anything but 0 is cloud.
  scene.pixels[2].fill_(0);
  scene.pixels[2].slice(1, 0, 4).fill_(1);
  write_scene(dir / "binary.tif", scene);
  GdalRaster binary(dir / "binary.tif");
  const auto masked = binary.read_window({0, 0, 32, 32}, RasterReadOptions().cloud_band(3));
  EXPECT_FALSE(masked.valid.slice(1, 0, 4).any().item<bool>());
  EXPECT_TRUE(masked.valid.slice(1, 4).all().item<bool>());
}

TEST(Raster, OverviewForAGroundSampleDistance) {
  TempDir dir;
  SceneSpec scene;
  scene.pixels = torch::full({1, 128, 128}, 7, torch::kInt32);
  scene.overviews = {2, 4, 8};
  write_scene(dir / "ovr.tif", scene);
  // Mark each overview with its own value, so a read shows which one it came from.
  {
    GDALDatasetH dataset = GDALOpen((dir / "ovr.tif").c_str(), GA_Update);
    GDALRasterBandH band = GDALGetRasterBand(dataset, 1);
    ASSERT_EQ(GDALGetOverviewCount(band), 3);
    for (int o = 0; o < 3; ++o) {
      GDALRasterBandH overview = GDALGetOverview(band, o);
      const int w = GDALGetRasterBandXSize(overview), h = GDALGetRasterBandYSize(overview);
      std::vector<uint16_t> values(static_cast<size_t>(w * h),
                                   static_cast<uint16_t>(1000 * (w == 64   ? 1
                                                                 : w == 32 ? 2
                                                                           : 3)));
      ASSERT_EQ(GDALRasterIO(overview, GF_Write, 0, 0, w, h, values.data(), w, h, GDT_UInt16, 0, 0),
                CE_None);
    }
    GDALClose(dataset);
  }
  GdalRaster raster(dir / "ovr.tif");
  ASSERT_EQ(raster.overviews().size(), 3u);
  EXPECT_EQ(raster.overviews()[0][0], 64);
  EXPECT_DOUBLE_EQ(raster.ground_sample_distance(), 10.0);
  EXPECT_EQ(raster.block_size(), (std::array<int64_t, 2>{32, 32}));
  // {requested m/px, overview index (-1: full resolution), the value that overview holds}
  for (const auto& [gsd, overview, value] : std::vector<std::tuple<double, int64_t, double>>{
           {10.0, -1, 7}, {20.0, 0, 1000}, {30.0, 0, 1000}, {40.0, 1, 2000}, {100.0, 2, 3000}}) {
    EXPECT_EQ(raster.overview_for(gsd), overview) << gsd;
    const auto patch =
        raster.read_window({0, 0, 64, 64}, RasterReadOptions().ground_sample_distance(gsd));
    EXPECT_EQ(patch.pixels.size(2), std::llround(64 * 10.0 / gsd)) << gsd;
    EXPECT_TRUE((patch.pixels == value).all().item<bool>()) << gsd;
  }
}

TEST(Raster, WindowsInMapCoordinatesAndTheirErrors) {
  TempDir dir;
  SceneSpec scene;
  scene.pixels = ramp(1, 40, 50);
  write_scene(dir / "utm.tif", scene);
  GdalRaster raster(dir / "utm.tif");
  // Pixel (column 5, row 8) has its top-left corner at (500050, 4999920).
  const auto window = raster.window_of({500050, 4999720, 500250, 4999920});
  EXPECT_EQ(window.x, 5);
  EXPECT_EQ(window.y, 8);
  EXPECT_EQ(window.width, 20);
  EXPECT_EQ(window.height, 20);
  const auto grid = raster.grid();
  EXPECT_EQ(grid.width, 50);
  EXPECT_DOUBLE_EQ(grid.geo_transform[0], 500000);
  const auto outside = input_error_of([&] {
    raster.read_window(raster.window_of({600000, 4000000, 600100, 4000100}), RasterReadOptions());
  });
  EXPECT_NE(outside.find("utm.tif"), std::string::npos) << outside;
  EXPECT_NE(outside.find("outside the image"), std::string::npos) << outside;

  SceneSpec bare;
  bare.pixels = ramp(1, 8, 8);
  bare.epsg = 0;
  write_scene(dir / "bare.tif", bare);
  GdalRaster no_georeference(dir / "bare.tif");
  EXPECT_EQ(no_georeference.read_window({0, 0, 8, 8}, RasterReadOptions()).pixels.size(1), 8);
  const auto refused = input_error_of([&] { no_georeference.window_of({0, 0, 1, 1}); });
  EXPECT_NE(refused.find("bare.tif: no georeference"), std::string::npos) << refused;
  const auto not_aligned = input_error_of([&] { GdalRaster::warped(dir / "bare.tif", grid); });
  EXPECT_NE(not_aligned.find("bare.tif: no georeference"), std::string::npos) << not_aligned;
}

TEST(Raster, ACogWindowReadsOnlyItsTiles) {
  // A COG stores its tiles row by row after its header and overviews: with the second half of
  // the file cut off, a window in the top rows still reads (it touches none of the missing
  // bytes) and one in the bottom rows fails naming the file.
  TempDir dir;
  SceneSpec scene;
  torch::manual_seed(3);
  scene.pixels = torch::randint(100, 60000, {1, 512, 512}, torch::kInt32);
  write_scene(dir / "plain.tif", scene);
  {
    GDALDatasetH source = GDALOpen((dir / "plain.tif").c_str(), GA_ReadOnly);
    char** options = nullptr;
    options = CSLSetNameValue(options, "BLOCKSIZE", "128");
    options = CSLSetNameValue(options, "COMPRESS", "DEFLATE");
    options = CSLSetNameValue(options, "OVERVIEWS", "NONE");
    GDALDatasetH cog = GDALCreateCopy(GDALGetDriverByName("COG"), (dir / "cog.tif").c_str(), source,
                                      FALSE, options, nullptr, nullptr);
    CSLDestroy(options);
    ASSERT_NE(cog, nullptr);
    GDALClose(cog);
    GDALClose(source);
  }
  testing::truncate_file(dir / "cog.tif", 0.5);
  GdalRaster raster(dir / "cog.tif");
  EXPECT_EQ(raster.block_size(), (std::array<int64_t, 2>{128, 128}));
  const auto top = raster.read_window({100, 0, 200, 128}, RasterReadOptions());
  EXPECT_TRUE(torch::equal(top.pixels[0].to(torch::kInt32),
                           scene.pixels[0].slice(0, 0, 128).slice(1, 100, 300)));
  const auto bottom = input_error_of([&] {
    raster.read_window({300, 400, 64, 64}, RasterReadOptions());
  });
  EXPECT_NE(bottom.find("cog.tif"), std::string::npos) << bottom;
}

TEST(Raster, AcquisitionDateFromMetadata) {
  TempDir dir;
  SceneSpec scene;
  scene.pixels = ramp(1, 8, 8);
  scene.metadata = {{"TIFFTAG_DATETIME", "2024:01:02 03:04:05"},
                    {"ACQUISITION_DATE", "2023-06-15"}};
  write_scene(dir / "dated.tif", scene);
  auto date = GdalRaster(dir / "dated.tif").acquisition_date();
  ASSERT_TRUE(date);
  EXPECT_EQ(date->first.iso(), "2023-06-15");  // the acquisition item, not the file's time
  EXPECT_EQ(date->second, "ACQUISITION_DATE");
  scene.metadata = {{"TIFFTAG_DATETIME", "2024:01:02 03:04:05"}};
  write_scene(dir / "tiff_time.tif", scene);
  EXPECT_EQ(GdalRaster(dir / "tiff_time.tif").acquisition_date()->first.iso(), "2024-01-02");
  scene.metadata = {{"ACQUISITION_DATE", "15 June 2023"}};
  write_scene(dir / "bad.tif", scene);
  const auto bad = input_error_of([&] { GdalRaster(dir / "bad.tif").acquisition_date(); });
  EXPECT_NE(bad.find("bad.tif"), std::string::npos) << bad;
  EXPECT_NE(bad.find("ACQUISITION_DATE = '15 June 2023'"), std::string::npos) << bad;
  scene.metadata = {};
  write_scene(dir / "undated.tif", scene);
  EXPECT_FALSE(GdalRaster(dir / "undated.tif").acquisition_date());
}

TEST(Raster, ScenesInTwoCrsAlignOnOneGridThroughTheWarper) {
  TempDir dir;
  // Date 1 in UTM 32N, 64 x 64 pixels of 30 m.
  SceneSpec a;
  a.transform = {500000, 30, 0, 5000000, 0, -30};
  a.pixels = testing::ground_pixels(32632, a.transform, 64, 64);
  write_scene(dir / "a_utm32.tif", a);
  // Date 2 of the same ground in WGS 84 longitude / latitude (0.0002 degrees, about 16 x 22 m
  // here), covering the west half of date 1.
  const auto b = testing::wgs84_ground_scene(499900, 4997900, 501000, 5000100, 0.0002);
  write_scene(dir / "b_wgs84.tif", b);

  GdalRaster reference(dir / "a_utm32.tif");
  const auto grid = reference.grid();
  const auto aligned = GdalRaster::warped(dir / "b_wgs84.tif", grid);
  EXPECT_EQ(aligned->info().width, 64);
  EXPECT_EQ(aligned->info().bands.size(), 1u);  // the warper's alpha band is a mask, not data
  // Both footprints in one CRS overlap where date 2 lies.
  const auto footprint = GdalRaster(dir / "b_wgs84.tif").footprint_in(grid.crs_wkt);
  EXPECT_NEAR(footprint.min_x, 499900, 60);
  EXPECT_NEAR(footprint.max_x, 501000, 60);
  // A window on the grid is the same ground on both dates: equal values up to interpolation,
  // and invalid east of date 2's footprint (x > 501000 m: column 33 on).
  const Region window{4, 4, 40, 40};
  const auto first = reference.read_window(window, RasterReadOptions());
  const auto second = aligned->read_window(window, RasterReadOptions());
  const auto inside = second.valid.slice(1, 0, 28);
  EXPECT_TRUE(inside.all().item<bool>());
  EXPECT_FALSE(second.valid.slice(1, 30).any().item<bool>());
  const auto difference = (first.pixels[0] - second.pixels[0]).slice(1, 0, 28).abs();
  EXPECT_LT(difference.max().item<double>(), 60.0);  // of a 2,800-unit range
  EXPECT_LT(difference.mean().item<double>(), 10.0);
}

}  // namespace
}  // namespace pretext::io
