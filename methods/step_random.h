#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace pretext::methods {

/// A seed for a method's own randomness (MAE's masks, MoCo's key shuffle), drawn from the global
/// generator, which the run seeds before building the method: [1] int64, kept as a buffer so a
/// checkpoint carries it.
at::Tensor draw_method_seed();

/// A CPU generator for optimiser step `step` of a method seeded with `seed` (a draw_method_seed
/// buffer): splitmix64 of (seed, step), so every step draws anew, the same on every run and
/// resume, on any device.
at::Generator step_generator(const at::Tensor& seed, int64_t step);

}  // namespace pretext::methods
