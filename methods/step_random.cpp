#include "methods/step_random.h"

#include <vector>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/module.h>
#include <torch/types.h>

namespace pretext::methods {

MirroredInt::MirroredInt(torch::nn::Module& owner, const std::string& name, int64_t value)
    : buffer_(owner.register_buffer(name, torch::full({1}, value, torch::kInt64))), value_(value) {
  remember();
}

int64_t MirroredInt::get() const {
  if (buffer_._version() != version_ ||
      buffer_.storage().unsafeGetStorageImpl() != storage_.unsafeGetStorageImpl()) {
    value_ = buffer_.item<int64_t>();
    remember();
  }
  return value_;
}

void MirroredInt::set(int64_t value) {
  buffer_.fill_(value);
  value_ = value;
  remember();
}

void MirroredInt::remember() const {
  version_ = buffer_._version();
  storage_ = buffer_.storage();
}

int64_t draw_method_seed() { return torch::randint(1LL << 62, {1}, torch::kInt64).item<int64_t>(); }

at::Generator step_generator(int64_t seed, int64_t step) {
  uint64_t z =
      static_cast<uint64_t>(seed) + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(step + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return at::make_generator<at::CPUGeneratorImpl>(z ^ (z >> 31));
}

StepDraws::StepDraws(torch::nn::Module& owner, const std::string& seed_name)
    : steps_(owner, "steps", 0), seed_(owner, seed_name, draw_method_seed()) {}

at::Generator StepDraws::generator() const { return step_generator(seed_.get(), steps_.get()); }

at::Tensor uniform_rows(const at::Generator& generator, const BatchSlice& slice, int64_t rows,
                        c10::IntArrayRef shape) {
  std::vector<int64_t> sizes{slice.global_rows(rows)};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  return at::rand(sizes, generator).narrow(0, slice.offset, rows);
}

}  // namespace pretext::methods
