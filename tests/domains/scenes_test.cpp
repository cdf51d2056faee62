// Multispectral windows: validity rejection, fill of invalid pixels, band statistics against a
// direct computation, and temporal series of one place across dates and CRSs.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "base/errors.h"
#include "domains/scenes.h"
#include "tests/io/test_data.h"

namespace pretext::domains {
namespace {

using testing::input_error_of;
using testing::SceneSpec;
using testing::TempDir;
using testing::write_scene;

// A 4-band 128 x 128 scene with nodata (0) in its 40 left columns.
SceneSpec bordered_scene() {
  SceneSpec scene;
  torch::manual_seed(11);
  scene.pixels = torch::randint(1000, 4000, {4, 128, 128}, torch::kInt32);
  scene.pixels.slice(2, 0, 40).fill_(0);
  scene.nodata = 0;
  scene.descriptions = {"B02", "B03", "B04", "B08"};
  scene.scale = 0.0001;
  return scene;
}

TEST(Scenes, WindowsWithTooLittleValidDataAreRejected) {
  TempDir dir;
  const auto scene = bordered_scene();
  write_scene(dir / "s.tif", scene);
  SceneDataset data(io::Catalog::from_path(dir.path()),
                    SceneOptions().window_size(32).band_names({"B08", "B04"}));
  // Columns 0-31 are all nodata, 32-63 a quarter nodata (under 0.9 valid): 2 of 4 columns kept.
  EXPECT_EQ(data.size(), 8);
  EXPECT_EQ(data.channels(), 2);
  EXPECT_EQ(data.band_names(), (std::vector<std::string>{"B08", "B04"}));
  ASSERT_EQ(data.notes().size(), 1u);
  EXPECT_NE(data.notes()[0].text.find("8 windows, 8 window-dates rejected"), std::string::npos)
      << data.notes()[0].text;
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto where = data.item(i).path;
    const int64_t x = std::stoll(where.substr(where.find("#x=") + 3));
    const int64_t y = std::stoll(where.substr(where.find(",y=") + 3));
    EXPECT_GE(x, 64);
    const auto expected = scene.pixels.index({torch::tensor({3, 2})})
                              .slice(1, y, y + 32)
                              .slice(2, x, x + 32)
                              .to(torch::kFloat32) *
                          0.0001f;
    EXPECT_TRUE(torch::allclose(data.get(i).pixels, expected, 1e-6, 1e-6)) << where;
  }
}

TEST(Scenes, BandStatisticsMatchADirectComputationAndFillInvalidPixels) {
  TempDir dir;
  const auto scene = bordered_scene();
  write_scene(dir / "s.tif", scene);
  SceneDataset data(io::Catalog::from_path(dir.path()),
                    SceneOptions().window_size(32).bands({1, 4}).min_valid_fraction(0.7));
  // x = 32 windows are now kept (75% valid): their nodata columns must not count.
  ASSERT_EQ(data.size(), 12);
  const auto stats = data.measure_statistics(1000);
  EXPECT_EQ(stats.windows, 12);
  const auto valid = scene.pixels.slice(2, 40).to(torch::kFloat64) * 0.0001;  // columns 40-127
  for (const auto& [b, band] : std::vector<std::pair<size_t, int64_t>>{{0, 0}, {1, 3}}) {
    const auto values = valid[band];
    EXPECT_NEAR(stats.mean[b], values.mean().item<double>(), 1e-6);
    EXPECT_NEAR(stats.std[b], values.std(/*unbiased=*/false).item<double>(), 1e-6);
    EXPECT_NEAR(stats.p2[b], torch::quantile(values.flatten(), 0.02).item<double>(), 0.003);
    EXPECT_NEAR(stats.p98[b], torch::quantile(values.flatten(), 0.98).item<double>(), 0.003);
  }
  EXPECT_EQ(stats.pixels, 88 * 128);
  // After set_statistics, nodata pixels read as the band means.
  data.set_statistics(stats);
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto where = data.item(i).path;
    if (where.find("#x=32,") == std::string::npos) continue;
    const int64_t y = std::stoll(where.substr(where.find(",y=") + 3));
    const auto pixels = data.get(i).pixels;
    EXPECT_NEAR(pixels[0][5][0].item<double>(), stats.mean[0], 1e-6);
    EXPECT_NEAR(pixels[1][5][7].item<double>(), stats.mean[1], 1e-6);
    EXPECT_NEAR(pixels[1][5][8].item<double>(), scene.pixels[3][y + 5][40].item<double>() * 0.0001,
                1e-6);
  }
  // Cached beside a run: read back only for the same key, whatever characters it holds.
  const nlohmann::json key = {{"root", "scenes/\"odd\" \\ name"}, {"bands", {1, 4}}};
  save_band_statistics(dir / "band_stats.json", key, stats);
  const auto loaded = load_band_statistics(dir / "band_stats.json", key);
  ASSERT_TRUE(loaded);
  EXPECT_NEAR(loaded->mean[1], stats.mean[1], 1e-12);
  EXPECT_NEAR(loaded->p98[0], stats.p98[0], 1e-12);
  EXPECT_EQ(loaded->windows, stats.windows);
  EXPECT_FALSE(load_band_statistics(dir / "band_stats.json",
                                    {{"root", "scenes/\"odd\" \\ name"}, {"bands", {1, 2}}}));
  testing::write_text(dir / "band_stats.json", "{\"key\": ");  // damaged: measured again
  EXPECT_FALSE(load_band_statistics(dir / "band_stats.json", key));
}

// Three dates of one place: two on a UTM 32N grid, one in WGS 84 (warped onto the first).
void write_series(const TempDir& dir) {
  SceneSpec first;
  first.transform = {500000, 30, 0, 5000000, 0, -30};
  first.pixels = testing::ground_pixels(32632, first.transform, 64, 64);
  first.metadata = {{"ACQUISITION_DATE", "2023-01-10"}};
  write_scene(dir / "a.tif", first);
  SceneSpec second = first;
  second.pixels = first.pixels + 100;  // the same ground, brighter
  second.metadata = {{"ACQUISITION_DATE", "2023-03-01"}};
  write_scene(dir / "b.tif", second);
  auto third = testing::wgs84_ground_scene(499800, 4997800, 502100, 5000200, 0.0002);
  third.metadata = {{"ACQUISITION_DATE", "2023-07-15"}};
  write_scene(dir / "c.tif", third);
}

TEST(Scenes, TemporalPairsAreTheSameGroundOnDatesWithinTheGaps) {
  TempDir dir;
  write_series(dir);
  // Gaps: a-b 50 days, b-c 136, a-c 186 (over max_gap_days).
  SceneDataset pairs(io::Catalog::from_path(dir.path()),
                     SceneOptions().window_size(16).frames(2).min_gap_days(30).max_gap_days(150));
  EXPECT_NE(pairs.summary().find("3 scenes in 1 places"), std::string::npos) << pairs.summary();
  EXPECT_NE(pairs.notes()[0].text.find("1 warped onto the first one's grid"), std::string::npos)
      << pairs.notes()[0].text;
  EXPECT_EQ(pairs.channels(), 2);
  ASSERT_EQ(pairs.size(), 2 * 16);  // 16 windows of 16 px on a 64 px grid, 2 pairs each
  int64_t with_c = 0;
  for (int64_t i = 0; i < pairs.size(); ++i) {
    const auto where = pairs.item(i).path;
    const bool a_b = where.rfind(dir / "a.tif|" + dir / "b.tif#", 0) == 0;
    const bool b_c = where.rfind(dir / "b.tif|" + dir / "c.tif#", 0) == 0;
    EXPECT_TRUE(a_b || b_c) << where;
    // Both frames against the ground at the window's map coordinates.
    const auto origin = pairs.map_origin(i);
    const auto truth =
        testing::ground_pixels(32632, {origin[0], 30, 0, origin[1], 0, -30}, 16, 16)[0].to(
            torch::kFloat32);
    const auto frames = pairs.get(i).pixels;
    const double offset = b_c ? 100.0 : 0.0;
    EXPECT_LT((frames[0] - truth - offset).abs().max().item<double>(), 0.51) << where;
    if (b_c) {
      ++with_c;
      EXPECT_LT((frames[1] - truth).abs().mean().item<double>(), 10.0) << where;
    } else {
      EXPECT_LT((frames[1] - truth - 100).abs().max().item<double>(), 0.51) << where;
    }
  }
  EXPECT_EQ(with_c, 16);
  // Seasons: a and b are 50 days apart in the year, b and c 136.
  SceneDataset seasons(
      io::Catalog::from_path(dir.path()),
      SceneOptions().window_size(16).frames(2).max_gap_days(365).min_season_days(100));
  EXPECT_EQ(seasons.size(), 2 * 16);  // b-c and a-c (10 January and 15 July: 179 days)
  for (int64_t i = 0; i < seasons.size(); ++i)
    EXPECT_NE(seasons.item(i).path.find("c.tif"), std::string::npos);
  // Three frames: a, b, c in order, with their dates for SatMAE's temporal encoding.
  SceneDataset series(io::Catalog::from_path(dir.path()), SceneOptions().window_size(16).frames(3));
  EXPECT_EQ(series.size(), 16);
  EXPECT_EQ(series.channels(), 3);
  // 2023-01-10, 2023-03-01, 2023-07-15 as days since 1970-01-01.
  EXPECT_EQ(series.acquired_at(5), (std::vector<int64_t>{19367, 19417, 19553}));
}

TEST(Scenes, RandomWindowsAreAnywhereValidAndReproducible) {
  TempDir dir;
  const auto scene = bordered_scene();
  write_scene(dir / "s.tif", scene);
  const auto options = SceneOptions().window_size(32).placement(WindowPlacement::kRandom).seed(5);
  SceneDataset data(io::Catalog::from_path(dir.path()), options);
  // 16 windows drawn (as many as the grid holds); those reaching far into the nodata border
  // (columns 0-39) rejected, and none kept starts left of column 36 (0.9 of 32 valid).
  ASSERT_GT(data.size(), 0);
  EXPECT_LT(data.size(), 16);
  bool off_grid = false;
  for (int64_t i = 0; i < data.size(); ++i) {
    const auto where = data.item(i).path;
    const int64_t x = std::stoll(where.substr(where.find("#x=") + 3));
    const int64_t y = std::stoll(where.substr(where.find(",y=") + 3));
    off_grid = off_grid || x % 32 != 0 || y % 32 != 0;
    EXPECT_GE(x, 36 - 4) << where;  // validity is known per 4-pixel cell
    const auto expected =
        scene.pixels.slice(1, y, y + 32).slice(2, x, x + 32).to(torch::kFloat32) * 0.0001f;
    const auto pixels = data.get(i).pixels;
    const auto valid = expected > 0;
    EXPECT_TRUE(
        torch::allclose(pixels.masked_select(valid), expected.masked_select(valid), 1e-6, 1e-6))
        << where;
  }
  EXPECT_TRUE(off_grid);
  SceneDataset again(io::Catalog::from_path(dir.path()), options);
  ASSERT_EQ(again.size(), data.size());
  for (int64_t i = 0; i < data.size(); ++i) EXPECT_EQ(again.item(i).path, data.item(i).path);
  SceneDataset other(io::Catalog::from_path(dir.path()), SceneOptions(options).seed(6));
  bool differs = other.size() != data.size();
  for (int64_t i = 0; !differs && i < data.size(); ++i)
    differs = other.item(i).path != data.item(i).path;
  EXPECT_TRUE(differs);
}

TEST(Scenes, ATruncatedSceneIsNamedAndSkippedOrFatal) {
  TempDir dir;
  write_scene(dir / "a.tif", bordered_scene());
  write_scene(dir / "b.tif", bordered_scene());
  testing::truncate_file(dir / "b.tif", 0.5);
  const auto catalog = io::Catalog::from_path(dir.path());
  const auto fatal =
      input_error_of([&] { SceneDataset data(catalog, SceneOptions().window_size(32)); });
  EXPECT_NE(fatal.find("b.tif"), std::string::npos) << fatal;
  SceneDataset skipped(catalog, SceneOptions().window_size(32).on_bad_file(io::OnBadFile::kSkip));
  ASSERT_EQ(skipped.bad_files().size(), 1u);
  EXPECT_NE(skipped.bad_files()[0].message.find("b.tif"), std::string::npos);
  EXPECT_EQ(skipped.size(), 8);  // a.tif's windows only
  for (int64_t i = 0; i < skipped.size(); ++i)
    EXPECT_NE(skipped.item(i).path.find("a.tif"), std::string::npos);
}

TEST(Scenes, AManifestGivesDatesAndPlaces) {
  TempDir dir;
  write_series(dir);  // metadata dates 2023-01-10, 2023-03-01, 2023-07-15
  // The manifest's dates win over the metadata; its places split c from a and b.
  testing::write_text(dir / "series.csv",
                      "path,date,place\na.tif,2022-01-10,north\nb.tif,2022-02-20,north\n"
                      "c.tif,2022-07-15,south\n");
  SceneDataset data(io::Catalog::from_path(dir / "series.csv"),
                    SceneOptions().window_size(16).frames(2).max_gap_days(60));
  EXPECT_NE(data.summary().find("3 scenes in 2 places"), std::string::npos) << data.summary();
  EXPECT_NE(data.notes()[0].text.find("2 dates from 2022-01-10 to 2022-02-20"), std::string::npos)
      << data.notes()[0].text;
  EXPECT_EQ(data.size(), 16);  // a-b on every window; c has no second date
}

TEST(Scenes, BadSeriesAreNamedAndSkippedOrFatal) {
  TempDir dir;
  write_series(dir);
  SceneSpec three_bands;
  three_bands.pixels = torch::ones({3, 64, 64}, torch::kInt32);
  three_bands.transform = {500000, 30, 0, 5000000, 0, -30};
  three_bands.metadata = {{"ACQUISITION_DATE", "2023-05-01"}};
  write_scene(dir / "d_three_bands.tif", three_bands);
  const auto catalog = io::Catalog::from_path(dir.path());
  const auto options = SceneOptions().window_size(16).frames(2);
  const auto fatal = input_error_of([&] { SceneDataset data(catalog, options); });
  EXPECT_NE(fatal.find("d_three_bands.tif: has 3 bands"), std::string::npos) << fatal;
  SceneDataset skipped(catalog, SceneOptions(options).on_bad_file(io::OnBadFile::kSkip));
  ASSERT_EQ(skipped.bad_files().size(), 1u);
  EXPECT_EQ(skipped.size(), 3 * 16);

  TempDir other;
  SceneSpec bare;
  bare.pixels = torch::ones({1, 32, 32}, torch::kInt32);
  bare.epsg = 0;
  bare.metadata = {{"ACQUISITION_DATE", "2023-05-01"}};
  write_scene(other / "bare.tif", bare);
  const auto no_georeference =
      input_error_of([&] { SceneDataset data(io::Catalog::from_path(other.path()), options); });
  EXPECT_NE(no_georeference.find("bare.tif: no georeference"), std::string::npos)
      << no_georeference;
  // Without frames a raster without georeference is fine.
  EXPECT_EQ(
      SceneDataset(io::Catalog::from_path(other.path()), SceneOptions().window_size(16)).size(), 4);
  bare.epsg = 32632;
  bare.metadata = {};
  write_scene(other / "bare.tif", bare);
  const auto undated =
      input_error_of([&] { SceneDataset data(io::Catalog::from_path(other.path()), options); });
  EXPECT_NE(undated.find("no acquisition date"), std::string::npos) << undated;
  EXPECT_NE(undated.find("give a date pattern"), std::string::npos) << undated;
  EXPECT_EQ(testing::input_error_option(
                [&] { SceneDataset data(io::Catalog::from_path(other.path()), options); }),
            "date_pattern");
}

}  // namespace
}  // namespace pretext::domains
