#pragma once

#include <cstdint>
#include <vector>

namespace pretext::domains {

/// The order in which one rank visits a data set in one epoch: a permutation drawn from
/// (seed, epoch), the same on every machine and standard library, split across `world_size` ranks
/// (rank r takes positions r, r + world_size, ...; the permutation is padded by wrapping around so
/// every rank gets the same count).
class EpochSampler {
 public:
  EpochSampler(int64_t size, uint64_t seed, int64_t rank = 0, int64_t world_size = 1,
               bool shuffle = true);
  std::vector<int64_t> order(int64_t epoch) const;
  /// Indices each rank visits per epoch.
  int64_t per_rank() const;

 private:
  int64_t size_;
  uint64_t seed_;
  int64_t rank_;
  int64_t world_size_;
  bool shuffle_;
};

/// A 64-bit mix of two values (splitmix64 finaliser), for deriving independent seeds such as
/// (run seed, step) -> augmentation seed.
uint64_t mix_seed(uint64_t a, uint64_t b);

}  // namespace pretext::domains
