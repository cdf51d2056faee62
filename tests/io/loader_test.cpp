#include <atomic>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "io/dataset.h"
#include "io/loader.h"
#include "tests/io/test_data.h"

namespace pretext::io {
namespace {

// Example i is a 1x2x2 tensor filled with i, labelled i % 3; reads take uneven time so that
// workers finish out of order.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t size, int64_t fail_at = -1, int64_t odd_shape_at = -1)
      : size_(size), fail_at_(fail_at), odd_shape_at_(odd_shape_at) {}
  int64_t size() const override { return size_; }
  Example get(int64_t index) const override {
    if (index == fail_at_) throw InputError("item " + std::to_string(index) + ": broken");
    std::this_thread::sleep_for(std::chrono::microseconds((index * 7919) % 500));
    ++reads;
    const int64_t side = index == odd_shape_at_ ? 3 : 2;
    return {torch::full({1, side, side}, static_cast<float>(index)), index % 3};
  }
  int64_t channels() const override { return 1; }
  const std::vector<std::string>& class_names() const override { return names_; }
  CatalogItem item(int64_t index) const override { return {std::to_string(index), "", ""}; }
  std::string summary() const override { return std::to_string(size_) + " counted examples"; }
  /// With `dated`, two frames acquired on days 1000 + i and 2000 + i, except example undated_at.
  std::vector<int64_t> acquired_at(int64_t index) const override {
    if (!dated || index == undated_at) return {};
    return {1000 + index, 2000 + index};
  }
  mutable std::atomic<int64_t> reads{0};
  bool dated = false;
  int64_t undated_at = -1;

 private:
  int64_t size_, fail_at_, odd_shape_at_;
  std::vector<std::string> names_;
};

std::vector<int64_t> reversed(int64_t n) {
  std::vector<int64_t> order;
  for (int64_t i = n - 1; i >= 0; --i) order.push_back(i);
  return order;
}

TEST(Loader, BatchesComeInTheGivenOrderWhateverThreadFinishesFirst) {
  auto data = std::make_shared<CountingDataset>(50);
  Loader loader(data, reversed(50), LoaderOptions().batch_size(8).workers(4).prefetch(3));
  EXPECT_EQ(loader.batches(), 6);  // drop_last: 50 / 8
  int64_t expected = 49, position = 0;
  while (auto batch = loader.next()) {
    EXPECT_EQ(batch->position, position++);
    ASSERT_EQ(batch->pixels.sizes(), (std::vector<int64_t>{8, 1, 2, 2}));
    for (int64_t i = 0; i < 8; ++i, --expected) {
      EXPECT_EQ(batch->indices[i], expected);
      EXPECT_EQ(batch->pixels[i][0][0][0].item<float>(), expected);
      EXPECT_EQ(batch->labels[i].item<int64_t>(), expected % 3);
    }
  }
  EXPECT_EQ(position, 6);
}

TEST(Loader, KeepsTheLastPartialBatchWhenAskedAndStartsMidway) {
  auto data = std::make_shared<CountingDataset>(10);
  Loader loader(data, reversed(10), LoaderOptions().batch_size(4).drop_last(false), 1);
  auto first = loader.next();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->position, 1);
  EXPECT_EQ(first->indices.front(), 5);
  auto last = loader.next();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->indices, (std::vector<int64_t>{1, 0}));
  EXPECT_FALSE(loader.next());
}

TEST(Loader, CollatesAcquisitionDatesWhenEveryExampleHasThem) {
  auto data = std::make_shared<CountingDataset>(12);
  EXPECT_FALSE(
      Loader(data, reversed(12), LoaderOptions().batch_size(4)).next()->acquired_at.defined());
  data->dated = true;
  data->undated_at = 2;
  Loader loader(data, reversed(12), LoaderOptions().batch_size(4).workers(2));
  auto batch = loader.next();  // 11, 10, 9, 8
  ASSERT_TRUE(batch->acquired_at.defined());
  EXPECT_TRUE(torch::equal(
      batch->acquired_at,
      torch::tensor({{1011, 2011}, {1010, 2010}, {1009, 2009}, {1008, 2008}}, torch::kInt64)));
  EXPECT_TRUE(loader.next()->acquired_at.defined());
  EXPECT_FALSE(loader.next()->acquired_at.defined());  // holds example 2, which has none
}

TEST(Loader, PrefetchIsBounded) {
  auto data = std::make_shared<CountingDataset>(400);
  Loader loader(data, reversed(400), LoaderOptions().batch_size(4).workers(2).prefetch(2));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Nothing consumed: at most `prefetch` batches may have been read.
  EXPECT_LE(data->reads.load(), 2 * 4);
  EXPECT_TRUE(loader.next());
}

TEST(Loader, AWorkerFailureReachesTheConsumer) {
  auto data = std::make_shared<CountingDataset>(40, 13);
  Loader loader(data, reversed(40), LoaderOptions().batch_size(4).workers(2));
  try {
    while (loader.next()) {
    }
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "item 13: broken");
  }
}

TEST(Loader, AnExampleOfAnotherShapeNamesItsFile) {
  auto data = std::make_shared<CountingDataset>(8, -1, 5);
  Loader loader(data, {0, 1, 2, 3, 4, 5, 6, 7}, LoaderOptions().batch_size(4).workers(1));
  EXPECT_TRUE(loader.next().has_value());
  try {
    loader.next();
    FAIL() << "a batch of mixed shapes was assembled";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what())
                  .find("5: example of shape [1, 3, 3], the batch's first "
                        "is [1, 2, 2]"),
              std::string::npos)
        << error.what();
  }
}

TEST(ImageDataset, ScalesByTheTypesFullRangeAndResamples) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "a");
  testing::write_raster(dir / "a/x.tif", torch::full({2, 8, 8}, 51.0), "GTiff");
  testing::write_raster(dir / "a/y.tif", torch::full({2, 8, 8}, 30000.0), "GTiff", true);
  ImageDataset data(Catalog::from_folder(dir.path()), ImageDatasetOptions().image_size(4));
  EXPECT_EQ(data.channels(), 2);
  const auto x = data.get(0);
  EXPECT_EQ(x.pixels.sizes(), (std::vector<int64_t>{2, 4, 4}));
  EXPECT_TRUE(torch::allclose(x.pixels, torch::full({2, 4, 4}, 0.2)));
  EXPECT_EQ(x.label, 0);
  EXPECT_TRUE(torch::allclose(data.get(1).pixels, torch::full({2, 4, 4}, 30000.0 / 65535.0)));

  ImageDataset picked(Catalog::from_folder(dir.path()),
                      ImageDatasetOptions().image_size(8).bands({2}).value_scale(1.0));
  EXPECT_EQ(picked.get(0).pixels.sizes(), (std::vector<int64_t>{1, 8, 8}));
  EXPECT_EQ(picked.get(0).pixels.max().item<float>(), 51.0f);
}

TEST(ImageDataset, ABandCountMismatchNamesTheFile) {
  testing::TempDir dir;
  testing::write_raster(dir / "a.tif", torch::zeros({3, 8, 8}), "GTiff");
  testing::write_raster(dir / "b.tif", torch::zeros({1, 8, 8}), "GTiff");
  ImageDataset data(Catalog::from_folder(dir.path()), ImageDatasetOptions().image_size(8));
  try {
    data.get(1);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "b.tif: GTiff: has 1 bands"), std::string::npos)
        << e.what();
  }
}

TEST(ImageDataset, CachesDecodedExamplesWithinItsBudget) {
  // 30 images of 1x128x128 float32 (64 KiB each): a 1 MiB cache holds 16 of them.
  testing::TempDir dir;
  for (int i = 0; i < 30; ++i)
    testing::write_raster(dir / ("img" + std::to_string(100 + i) + ".tif"),
                          torch::full({1, 8, 8}, static_cast<double>(i)), "GTiff");
  const auto catalog = Catalog::from_folder(dir.path());
  ImageDataset cached(catalog, ImageDatasetOptions().image_size(128).value_scale(1.0).cache_mb(1));
  ImageDataset uncached(catalog, ImageDatasetOptions().image_size(128).value_scale(1.0));
  for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(cached.get(i).pixels.mean().item<float>(), i);
  for (const auto& item : catalog.items()) std::filesystem::remove(item.path);
  int64_t served = 0;
  for (int64_t i = 0; i < 30; ++i) {
    try {
      EXPECT_EQ(cached.get(i).pixels.mean().item<float>(), i);
      ++served;
    } catch (const InputError&) {
    }
  }
  EXPECT_EQ(served, 16);
  EXPECT_THROW(uncached.get(0), InputError);
}

}  // namespace
}  // namespace pretext::io
