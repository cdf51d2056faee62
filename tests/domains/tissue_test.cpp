#include <filesystem>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "domains/tiles.h"
#include "domains/tissue.h"
#include "io/catalog.h"
#include "io/slide.h"
#include "tests/io/slide_data.h"
#include "tests/io/test_data.h"

namespace pretext::domains {
namespace {
using testing::TempDir;

// Otsu by its definition: the cut among 255 bin edges maximising the between-class variance of
// the values themselves.
double brute_force_otsu(const torch::Tensor& values) {
  const auto v = values.flatten().to(torch::kFloat64);
  double best = -1, threshold = 0;
  for (int k = 1; k < 256; ++k) {
    const double t = k / 256.0;
    const auto upper = v >= t;
    const double n1 = upper.sum().item<double>(), n0 = v.numel() - n1;
    if (n0 == 0 || n1 == 0) continue;
    const double m1 = v.masked_select(upper).mean().item<double>();
    const double m0 = v.masked_select(~upper).mean().item<double>();
    const double between = n0 * n1 * (m0 - m1) * (m0 - m1);
    if (between > best + 1e-12) {
      best = between;
      threshold = t;
    }
  }
  return threshold;
}

TEST(Tissue, OtsuMatchesItsDefinition) {
  torch::manual_seed(1);
  const auto values =
      torch::cat({torch::rand({300}) * 0.2 + 0.05, torch::rand({200}) * 0.3 + 0.6}).clamp(0, 0.999);
  const double t = otsu_threshold(values);
  EXPECT_GE(t, 0.25);
  EXPECT_LE(t, 0.6);
  // Same split of the data as the brute-force cut (bin edges may differ within the gap).
  EXPECT_TRUE(torch::equal(values >= t, values >= brute_force_otsu(values)));
}

TEST(Tissue, SmallRegionsAreRemoved) {
  auto mask = torch::zeros({10, 10}, torch::kBool);
  mask.slice(0, 0, 2).slice(1, 0, 2) = true;  // 4 pixels
  mask.slice(0, 4, 9).slice(1, 4, 9) = true;  // 25 pixels
  mask[9][9] = true;                          // touches the big one diagonally
  const auto kept = remove_small_regions(mask, 5);
  EXPECT_EQ(kept.sum().item<int64_t>(), 26);
  EXPECT_FALSE(kept[0][0].item<bool>());
  EXPECT_TRUE(kept[9][9].item<bool>());
}

TEST(Tissue, TilesCoverTheTissueAndNotTheBackground) {
  TempDir dir;
  testing::SlideSpec spec;
  spec.levels = 3;
  spec.level0 = testing::tissue_image(1024, 1024, 256, 128, 768, 640);
  write_slide(dir / "a.svs", spec);
  io::Slide slide(dir / "a.svs");
  // 64-pixel tiles at 1 µm/px are 128 level-0 pixels; tissue spans 4 x 4 of them exactly.
  const auto map =
      map_tissue(slide, TissueOptions().microns_per_pixel(1.0).tile_size(64).detection_width(256));
  EXPECT_EQ(map.level, 2);
  EXPECT_DOUBLE_EQ(map.downsample, 4.0);
  EXPECT_EQ(map.grid_tiles, 64);
  ASSERT_EQ(map.tiles.size(), 16u);
  for (const auto& tile : map.tiles) {
    EXPECT_EQ(tile.side, 128);
    EXPECT_GE(tile.y, 256);
    EXPECT_LT(tile.y, 768);
    EXPECT_GE(tile.x, 128);
    EXPECT_LT(tile.x, 640);
  }
  EXPECT_TRUE(map.on_tile_grid);  // 1 µm/px is level 1's own, whose tiles are 64 px
  // Tiles smaller than the slide's sit at the slide's tile origins (every 128 level-0 pixels).
  const auto smaller =
      map_tissue(slide, TissueOptions().microns_per_pixel(1.0).tile_size(48).detection_width(256));
  EXPECT_TRUE(smaller.on_tile_grid);
  ASSERT_EQ(smaller.tiles.size(), 16u);
  for (const auto& tile : smaller.tiles) {
    EXPECT_EQ(tile.side, 96);
    EXPECT_EQ(tile.x % 128, 0);
    EXPECT_EQ(tile.y % 128, 0);
  }
  // Between levels the grid is contiguous tiles of the target size.
  EXPECT_FALSE(
      map_tissue(slide, TissueOptions().microns_per_pixel(0.75).tile_size(48).detection_width(256))
          .on_tile_grid);
  // Detected on the coarsest level reduced by 2 instead: the same tiles.
  const auto reduced =
      map_tissue(slide, TissueOptions().microns_per_pixel(1.0).tile_size(64).detection_width(128));
  EXPECT_EQ(reduced.level, 2);
  EXPECT_EQ(reduced.factor, 2);
  EXPECT_DOUBLE_EQ(reduced.downsample, 8.0);
  EXPECT_EQ(reduced.mask.sizes(), (std::vector<int64_t>{128, 128}));
  ASSERT_EQ(reduced.tiles.size(), map.tiles.size());
  for (size_t i = 0; i < map.tiles.size(); ++i) {
    EXPECT_EQ(reduced.tiles[i].x, map.tiles[i].x);
    EXPECT_EQ(reduced.tiles[i].y, map.tiles[i].y);
  }
  const auto thumbnail = tissue_thumbnail(slide, map);
  EXPECT_EQ(thumbnail.sizes(), (std::vector<int64_t>{3, 256, 256}));
  EXPECT_EQ(thumbnail[1][64][32].item<uint8_t>(), 200);  // a kept tile's top edge is green
  EXPECT_EQ(thumbnail[0][64][32].item<uint8_t>(), 0);
  // A blank slide keeps nothing.
  spec.level0 = torch::full({3, 512, 512}, 245, torch::kUInt8);
  write_slide(dir / "blank.svs", spec);
  io::Slide blank(dir / "blank.svs");
  EXPECT_TRUE(map_tissue(blank, TissueOptions().tile_size(64)).tiles.empty());
}

TEST(TileDataset, TissueTilesOnlyWithTheSlidesLabels) {
  TempDir dir;
  testing::SlideSpec spec;
  spec.level0 = testing::tissue_image(512, 512, 0, 0, 256, 512);  // top half tissue
  std::filesystem::create_directories(dir / "train/tumour");
  write_slide(dir / "train/tumour/a.svs", spec);
  testing::write_text(dir / "train/tumour/notes.txt", "not a slide");
  spec.microns_per_pixel = 0;  // a slide that states no mpp
  spec.vendor = "generic";
  write_slide(dir / "train/tumour/b.tif", spec);
  const auto catalog = io::Catalog::from_folder(dir.path(), io::is_slide);
  ASSERT_EQ(catalog.size(), 2);
  const auto options =
      TileDatasetOptions()
          .tissue(TissueOptions().microns_per_pixel(1.0).tile_size(32).detection_width(128))
          .on_bad_file(io::OnBadFile::kSkip)
          .thumbnail_dir(dir / "thumbnails");
  const TileDataset tiles(catalog, options);
  // a.svs: 64-pixel level-0 tiles, 8 x 8 grid, the top 4 rows tissue; b.tif skipped (no mpp).
  EXPECT_EQ(tiles.size(), 32);
  ASSERT_EQ(tiles.bad_files().size(), 1u);
  EXPECT_NE(tiles.bad_files()[0].message.find("b.tif: OpenSlide: the slide states no microns"),
            std::string::npos);
  EXPECT_NE(tiles.notes()[0].text.find("32 of 64 tiles kept as tissue (50%; 32 rejected"),
            std::string::npos)
      << tiles.notes()[0].text;
  EXPECT_TRUE(std::filesystem::exists(dir / "thumbnails/0000_a.png"));
  io::Slide slide(dir / "train/tumour/a.svs");
  for (int64_t i = 0; i < tiles.size(); i += 7) {
    const auto example = tiles.get(i);
    EXPECT_EQ(example.label, 0);
    const auto item = tiles.item(i);
    EXPECT_EQ(item.split, "train");
    const auto x = std::stoll(item.path.substr(item.path.find("#x=") + 3));
    const auto y = std::stoll(item.path.substr(item.path.find(",y=") + 3));
    EXPECT_LT(y, 256);
    EXPECT_TRUE(
        torch::allclose(example.pixels, slide.read_tile(x, y, 1.0, 32).to(torch::kFloat32) / 255));
  }
  // With a fallback mpp the second slide is read too, and kFail stops at a bad slide.
  const TileDataset both(catalog, TileDatasetOptions(options).fallback_microns_per_pixel(0.5));
  EXPECT_EQ(both.size(), 64);
  // The resolution assumed for b.tif is a warning; a.svs's note is a detail of the run log.
  EXPECT_EQ(both.notes()[0].severity, io::DatasetNote::Severity::kDetail);
  EXPECT_EQ(both.notes()[1].severity, io::DatasetNote::Severity::kWarning);
  EXPECT_NE(both.notes()[1].text.find("the fallback resolution: the slide states none"),
            std::string::npos)
      << both.notes()[1].text;
  EXPECT_NE(testing::input_error_of([&] {
              TileDataset(catalog, TileDatasetOptions(options).on_bad_file(io::OnBadFile::kFail));
            }).find("b.tif"),
            std::string::npos);
}

TEST(TileDataset, TilesAreMacenkoNormalisedToAStainReference) {
  TempDir dir;
  torch::manual_seed(9);
  const auto unit = [](torch::Tensor m) { return m / m.norm(2, 1, true); };
  const auto reference_stains =
      unit(torch::tensor({0.65, 0.70, 0.29, 0.07, 0.99, 0.11}, torch::kFloat64).view({2, 3}));
  const auto scanner_stains =
      unit(torch::tensor({0.50, 0.80, 0.33, 0.15, 0.90, 0.30}, torch::kFloat64).view({2, 3}));
  auto c = torch::rand({2, 256, 256}, torch::kFloat64) + 0.3;
  c[1].slice(0, 0, 80).zero_();
  c[0].slice(0, 80, 160).zero_();
  const auto render = [&](const torch::Tensor& stains) {
    const auto od = torch::matmul(stains.t(), c.flatten(1));
    return (256 * (-od).exp() - 1).clamp(0, 255).round().view({3, 256, 256});
  };
  testing::write_raster(dir / "reference.png", render(reference_stains), "PNG");
  testing::SlideSpec spec;
  spec.level0 = render(scanner_stains).to(torch::kUInt8);
  spec.levels = 1;
  std::filesystem::create_directories(dir / "slides");
  write_slide(dir / "slides/a.svs", spec);
  const auto catalog = io::Catalog::from_folder(dir / "slides", io::is_slide);
  auto options = TileDatasetOptions().tissue(
      TissueOptions().microns_per_pixel(0.5).tile_size(256).min_tissue_fraction(0));
  const auto plain = TileDataset(catalog, options).get(0).pixels * 255;
  const auto normalised =
      TileDataset(catalog, options.stain_reference(dir / "reference.png")).get(0).pixels * 255;
  const auto target = render(reference_stains).to(torch::kFloat32);
  EXPECT_GT((plain - target).abs().mean().item<float>(), 10.0f);
  EXPECT_LT((normalised - target).abs().mean().item<float>(), 3.0f);
  EXPECT_NE(testing::input_error_of([&] {
              TileDataset(catalog, options.stain_reference(dir / "missing.png"));
            }).find("missing.png"),
            std::string::npos);
}

}  // namespace
}  // namespace pretext::domains
