#include <algorithm>

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

TEST(RankShare, RanksTakeTheirRowsOfTheGlobalBatchesOfOneProcess) {
  const auto order = EpochSampler(23, 5).order(2);
  // 23 images, 3 ranks of 2: three global batches of 6, the last 5 images dropped as one process
  // with batch 6 drops them.
  const int64_t world = 3, batch = 2;
  std::vector<std::vector<int64_t>> shares;
  for (int64_t rank = 0; rank < world; ++rank)
    shares.push_back(rank_share(order, batch, rank, world));
  for (int64_t step = 0; step < 3; ++step)
    for (int64_t rank = 0; rank < world; ++rank)
      for (int64_t row = 0; row < batch; ++row)
        EXPECT_EQ(shares[rank].at(step * batch + row), order[step * 6 + rank * batch + row]);
  for (const auto& share : shares) EXPECT_EQ(share.size(), 6u);
  EXPECT_EQ(rank_share(order, 6, 0, 1), std::vector<int64_t>(order.begin(), order.begin() + 18));
  EXPECT_THROW(rank_share(order, 2, 3, 3), std::invalid_argument);
}

TEST(EpochSampler, UnshuffledIsTheIdentity) {
  const EpochSampler sampler(5, 1, false);
  EXPECT_EQ(sampler.order(9), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

}  // namespace
}  // namespace pretext::domains
