#pragma once

#include <cstdint>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "base/batch_slice.h"

namespace pretext::methods {

/// The masks of masked image modelling over a grid x grid patch map, 1 for a hidden patch,
/// row-major, drawn on the CPU from a step's generator (step_random.h).

/// SimMIM's reference masks: for each image (rows of the global batch in `slice`), exactly
/// ceil(blocks x ratio) of the (grid / scale)^2 blocks hidden, each block scale x scale patches;
/// [B, grid x grid].
at::Tensor block_masks(int64_t batch, int64_t grid, int64_t scale, double ratio,
                       const at::Generator& generator, const BatchSlice& slice = {});

/// BEiT's blockwise masking generator (also iBOT's 'block' masks): blocks of random area in
/// [min_block, patches still to hide] and aspect ratio log-uniform in [aspect, 1 / aspect],
/// each placed where it hides at least one new patch and no more than are left, up to 10 tries
/// per block, until `target` patches are hidden or a block finds no place. [grid x grid] float.
/// BEiT's min_block is 16 patches (of 14 x 14), iBOT's (grid / 3)^2.
at::Tensor block_mask(int64_t grid, double target, double min_block, double aspect,
                      at::Generator& generator);

/// block_mask of every image of the global batch in turn from one generator, with target
/// ratio x grid^2 each, then this process's rows of `slice`: [B, grid x grid].
at::Tensor block_mask_rows(int64_t batch, int64_t grid, double ratio, double min_block,
                           double aspect, at::Generator generator, const BatchSlice& slice = {});

/// A uniform double in [a, b) from the CPU generator's next 64 random bits (53 of them), as
/// Python's random.uniform in the references' mask generators.
double uniform(at::Generator& generator, double a, double b);

}  // namespace pretext::methods
