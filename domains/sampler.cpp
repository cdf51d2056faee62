#include "domains/sampler.h"

#include <numeric>
#include <stdexcept>
#include <string>

namespace pretext::domains {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t state = a ^ (b * 0xd1b54a32d192ed03ULL);
  return splitmix64(state);
}

EpochSampler::EpochSampler(int64_t size, uint64_t seed, bool shuffle)
    : size_(size), seed_(seed), shuffle_(shuffle) {}

std::vector<int64_t> EpochSampler::order(int64_t epoch) const {
  std::vector<int64_t> all(static_cast<size_t>(size_));
  std::iota(all.begin(), all.end(), 0);
  if (shuffle_) {
    // Fisher-Yates with our own generator: std::shuffle's sequence differs between libraries.
    uint64_t state = mix_seed(seed_, static_cast<uint64_t>(epoch));
    for (int64_t i = size_ - 1; i > 0; --i) {
      const uint64_t bound = static_cast<uint64_t>(i) + 1;
      const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;  // rejection avoids modulo bias
      uint64_t r;
      do r = splitmix64(state);
      while (r >= limit);
      std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(r % bound)]);
    }
  }
  return all;
}

std::vector<int64_t> rank_share(const std::vector<int64_t>& order, int64_t batch_size, int64_t rank,
                                int64_t world_size) {
  if (batch_size < 1 || world_size < 1 || rank < 0 || rank >= world_size)
    throw std::invalid_argument("rank " + std::to_string(rank) + " of world size " +
                                std::to_string(world_size) + ", batch " +
                                std::to_string(batch_size));
  const int64_t global = batch_size * world_size;
  const int64_t steps = static_cast<int64_t>(order.size()) / global;
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(steps * batch_size));
  for (int64_t step = 0; step < steps; ++step) {
    const auto first = order.begin() + step * global + rank * batch_size;
    mine.insert(mine.end(), first, first + batch_size);
  }
  return mine;
}

}  // namespace pretext::domains
