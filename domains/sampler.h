#pragma once

#include <cstdint>
#include <vector>

namespace pretext::domains {

/// The order in which a run visits a data set in one epoch: a permutation drawn from
/// (seed, epoch), the same on every machine and standard library.
class EpochSampler {
 public:
  EpochSampler(int64_t size, uint64_t seed, bool shuffle = true);
  std::vector<int64_t> order(int64_t epoch) const;

 private:
  int64_t size_;
  uint64_t seed_;
  bool shuffle_;
};

/// Rank `rank`'s share of an epoch's `order` for data-parallel steps of `batch_size` images per
/// rank: the order cut into global batches of batch_size x world_size (an incomplete last one
/// dropped), and of each global batch the rank-th run of batch_size. The ranks together take,
/// step by step, the batches one process of the global batch size takes, rank r the rows
/// [r x batch_size, (r + 1) x batch_size) of each.
std::vector<int64_t> rank_share(const std::vector<int64_t>& order, int64_t batch_size, int64_t rank,
                                int64_t world_size);

/// A 64-bit mix of two values (splitmix64 finaliser), for deriving independent seeds such as
/// (run seed, step) -> augmentation seed.
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace pretext::domains
