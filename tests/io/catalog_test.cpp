#include <filesystem>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/catalog.h"
#include "tests/io/test_data.h"

namespace pretext::io {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

void image(const std::string& path) {
  fs::create_directories(fs::path(path).parent_path());
  testing::write_raster(path, torch::zeros({1, 4, 4}), "PNG");
}

TEST(Catalog, FolderGivesSplitsAndLabelsFromFolderNames) {
  TempDir dir;
  image(dir / "train/forest/b.png");
  image(dir / "train/forest/a.png");
  image(dir / "train/water/c.png");
  image(dir / "test/water/d.png");
  testing::write_text(dir / "train/README.txt", "not an image");
  image(dir / ".hidden/e.png");
  const auto catalog = Catalog::from_path(dir.path());
  ASSERT_EQ(catalog.size(), 4);
  EXPECT_EQ(catalog.skipped_files(), 1);
  EXPECT_EQ(catalog.items()[0].path, dir / "test/water/d.png");  // sorted by path
  EXPECT_EQ(catalog.items()[0].split, "test");
  EXPECT_EQ(catalog.items()[1].path, dir / "train/forest/a.png");
  EXPECT_EQ(catalog.items()[1].label, "forest");
  EXPECT_EQ(catalog.class_names(), (std::vector<std::string>{"forest", "water"}));
  EXPECT_EQ(catalog.with_split("train").size(), 3);
  EXPECT_TRUE(catalog.has_splits());
  // A root written with a trailing slash gives the same splits and labels.
  const auto slash = Catalog::from_path(dir.path() + "/");
  EXPECT_EQ(slash.items()[1].label, "forest");
  EXPECT_EQ(slash.items()[1].split, "train");
}

TEST(Catalog, FlatFolderHasNoLabels) {
  TempDir dir;
  image(dir / "x.png");
  image(dir / "sub/y.png");
  const auto catalog = Catalog::from_folder(dir.path());
  ASSERT_EQ(catalog.size(), 2);
  EXPECT_EQ(catalog.items()[1].label, "");
  EXPECT_EQ(catalog.items()[0].label, "sub");
  EXPECT_FALSE(catalog.has_splits());
}

TEST(Catalog, ManifestRowsWithHeaderQuotesAndRelativePaths) {
  TempDir dir;
  image(dir / "imgs/a,1.png");
  image(dir / "imgs/b.png");
  image(dir / "c.png");
  testing::write_text(dir / "list.csv",
                      "path,label,split\n\"imgs/a,1.png\",cat,train\nimgs/b.png,dog\r\n\n" +
                          (dir / "c.png") + "\n");
  const auto catalog = Catalog::from_path(dir / "list.csv");
  ASSERT_EQ(catalog.size(), 3);
  EXPECT_EQ(catalog.items()[0].path, dir / "imgs/a,1.png");
  EXPECT_EQ(catalog.items()[0].label, "cat");
  EXPECT_EQ(catalog.items()[0].split, "train");
  EXPECT_EQ(catalog.items()[1].label, "dog");
  EXPECT_EQ(catalog.items()[1].split, "");
  EXPECT_EQ(catalog.items()[2].path, dir / "c.png");
}

TEST(Catalog, ManifestHeaderNamesColumnsIncludingDateAndPlace) {
  TempDir dir;
  image(dir / "s1.png");
  image(dir / "s2.png");
  testing::write_text(dir / "scenes.csv",
                      "path,date,place,label\ns1.png,2023-06-15,site 7,forest\n"
                      "s2.png,20230701,site 7\n");
  const auto catalog = Catalog::from_path(dir / "scenes.csv");
  ASSERT_EQ(catalog.size(), 2);
  EXPECT_EQ(catalog.items()[0].date, "2023-06-15");
  EXPECT_EQ(catalog.items()[0].place, "site 7");
  EXPECT_EQ(catalog.items()[0].label, "forest");
  EXPECT_EQ(catalog.items()[1].date, "20230701");
  EXPECT_EQ(catalog.items()[1].label, "");
  testing::write_text(dir / "unknown.csv", "path,when\ns1.png,2023-06-15\n");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "unknown.csv");
            }).find("unknown.csv:1: unknown column 'when'"),
            std::string::npos);
  testing::write_text(dir / "bad_date.csv", "path,date\ns1.png,2023-02-30\n");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "bad_date.csv");
            }).find("bad_date.csv:2: date '2023-02-30' is not a date"),
            std::string::npos);
}

TEST(Catalog, LabelsColumnGivesSeveralLabelsPerImage) {
  TempDir dir;
  image(dir / "s1.png");
  image(dir / "s2.png");
  image(dir / "s3.png");
  testing::write_text(dir / "multi.csv",
                      "path,labels,split\ns1.png, forest ;water,train\n"
                      "s2.png,urban,test\ns3.png,,train\n");
  const auto catalog = Catalog::from_path(dir / "multi.csv");
  EXPECT_TRUE(catalog.multi_label());
  EXPECT_TRUE(catalog.with_split("train").multi_label());
  EXPECT_EQ(catalog.items()[0].labels, (std::vector<std::string>{"forest", "water"}));
  EXPECT_EQ(catalog.items()[0].label, "");
  EXPECT_EQ(catalog.items()[1].labels, (std::vector<std::string>{"urban"}));
  EXPECT_TRUE(catalog.items()[2].labels.empty());
  EXPECT_EQ(catalog.class_names(), (std::vector<std::string>{"forest", "urban", "water"}));
  testing::write_text(dir / "single.csv", "path,label\ns1.png,forest\n");
  EXPECT_FALSE(Catalog::from_path(dir / "single.csv").multi_label());

  testing::write_text(dir / "both.csv", "path,label,labels\ns1.png,a,a;b\n");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "both.csv");
            }).find("both.csv:1: columns 'label' (one per image) and 'labels'"),
            std::string::npos);
}

TEST(Catalog, BadInputNamesThePathAndLine) {
  TempDir dir;
  EXPECT_NE(
      testing::input_error_of([&] { Catalog::from_path(dir / "nowhere"); }).find(dir / "nowhere"),
      std::string::npos);
  fs::create_directories(dir / "empty");
  testing::write_text(dir / "empty/notes.txt", "x");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "empty");
            }).find("no image files found"),
            std::string::npos);

  image(dir / "a.png");
  testing::write_text(dir / "bad.csv", "a.png,cat\na.png,cat,train,extra\n");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "bad.csv");
            }).find(dir / "bad.csv:2: expected path[,label][,split], found 4 fields"),
            std::string::npos);
  testing::write_text(dir / "missing.csv", "a.png\nb.png\n");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "missing.csv");
            }).find(dir / "missing.csv:2: " + dir / "b.png: no such file"),
            std::string::npos);
  testing::write_text(dir / "split.csv", "a.png,cat,holdout\n");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "split.csv");
            }).find("split.csv:1: split"),
            std::string::npos);
  testing::write_text(dir / "quote.csv", "\"a.png,cat\n");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "quote.csv");
            }).find("unclosed quote"),
            std::string::npos);
  testing::write_text(dir / "none.csv", "path,label\n");
  EXPECT_NE(testing::input_error_of([&] {
              Catalog::from_path(dir / "none.csv");
            }).find("lists no images"),
            std::string::npos);
}

}  // namespace
}  // namespace pretext::io
