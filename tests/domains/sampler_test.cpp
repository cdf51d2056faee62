#include <algorithm>
#include <set>

#include <gtest/gtest.h>

#include "domains/sampler.h"

namespace pretext::domains {
namespace {

TEST(EpochSampler, SameSeedAndEpochSameOrder) {
  const EpochSampler a(100, 42), b(100, 42), other_seed(100, 43);
  EXPECT_EQ(a.order(3), b.order(3));
  EXPECT_NE(a.order(3), a.order(4));
  EXPECT_NE(a.order(3), other_seed.order(3));
  auto sorted = a.order(3);
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(sorted[i], i);  // a permutation
}

TEST(EpochSampler, RanksSplitOneEpochWithoutOverlap) {
  const int64_t world = 3;
  std::multiset<int64_t> seen;
  for (int64_t rank = 0; rank < world; ++rank) {
    const EpochSampler sampler(10, 5, rank, world);
    const auto mine = sampler.order(2);
    EXPECT_EQ(static_cast<int64_t>(mine.size()), sampler.per_rank());
    seen.insert(mine.begin(), mine.end());
  }
  // 10 images over 3 ranks: 4 each, the permutation wrapped by two.
  EXPECT_EQ(seen.size(), 12u);
  for (int64_t i = 0; i < 10; ++i) EXPECT_GE(seen.count(i), 1u);
}

TEST(EpochSampler, UnshuffledIsTheIdentity) {
  const EpochSampler sampler(5, 1, 0, 1, false);
  EXPECT_EQ(sampler.order(9), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

}  // namespace
}  // namespace pretext::domains
