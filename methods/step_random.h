#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <c10/core/Storage.h>
#include <c10/util/ArrayRef.h>

#include "base/batch_slice.h"

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

/// A method's own draws for each optimiser step (MAE's masks, MoCo's key shuffle, the jigsaw's
/// puzzles): the steps taken and a seed, in buffers "steps" and `seed_name` that checkpoints
/// carry, so that a resumed run draws what an uninterrupted one would.
///   draws_ = StepDraws(*this, "mask_seed");
class StepDraws {
 public:
  StepDraws() = default;
  StepDraws(torch::nn::Module& owner, const std::string& seed_name);
  /// The generator of the current step.
  at::Generator generator() const;
  /// After optimiser step `step` (counted from 1).
  void set_step(int64_t step) { steps_.set(step); }
  /// Optimiser steps taken.
  int64_t step() const { return steps_.get(); }

 private:
  MirroredInt steps_, seed_;
};

/// Uniform [0, 1) draws of shape [rows, shape...] for this process's rows of a global batch:
/// drawn for all slice.global_rows(rows) rows from `generator`, on the CPU, then narrowed to the
/// slice's, so that N ranks draw what one process draws for the same images.
at::Tensor uniform_rows(const at::Generator& generator, const BatchSlice& slice, int64_t rows,
                        c10::IntArrayRef shape = {});

}  // namespace pretext::methods
