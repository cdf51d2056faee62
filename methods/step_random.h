#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Storage.h>

namespace torch::nn {
class Module;
}

namespace pretext::methods {

/// An int64 a method keeps in a [1] buffer, which its checkpoints carry, mirrored on the host so
/// that reading it needs no host-device synchronisation. The mirror is read again, once, after
/// the buffer was replaced from outside (a checkpoint load, a move to another device): its
/// storage or its version counter then differs from what the last set() left. The storage seen
/// last is held, so a new one cannot take its address.
///   steps_ = MirroredInt(*this, "steps", 0);
class MirroredInt {
 public:
  MirroredInt() = default;
  MirroredInt(torch::nn::Module& owner, const std::string& name, int64_t value);
  int64_t get() const;
  /// Also fills the buffer (asynchronously on a GPU).
  void set(int64_t value);

 private:
  void remember() const;

  at::Tensor buffer_;
  mutable int64_t value_ = 0;
  mutable int64_t version_ = 0;
  mutable c10::Storage storage_;
};

/// A seed for a method's own randomness (MAE's masks, MoCo's key shuffle), drawn from the global
/// generator, which the run seeds before building the method; kept in a MirroredInt so a
/// checkpoint carries it.
int64_t draw_method_seed();

/// A CPU generator for optimiser step `step` of a method seeded with `seed` (a draw_method_seed
/// value): splitmix64 of (seed, step), so every step draws anew, the same on every run and
/// resume, on any device.
at::Generator step_generator(int64_t seed, int64_t step);

}  // namespace pretext::methods
