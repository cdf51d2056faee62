#include "methods/step_random.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>

namespace pretext::methods {

at::Tensor draw_method_seed() { return torch::randint(1LL << 62, {1}, torch::kInt64); }

at::Generator step_generator(const at::Tensor& seed, int64_t step) {
  uint64_t z = static_cast<uint64_t>(seed.item<int64_t>()) +
               0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(step + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return at::make_generator<at::CPUGeneratorImpl>(z ^ (z >> 31));
}

}  // namespace pretext::methods
