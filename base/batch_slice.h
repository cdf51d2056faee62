#pragma once

#include <cstdint>

namespace pretext {

/// Where one rank's batch lies in the global batch of a data-parallel step: rows
/// [offset, offset + rows) of a batch of `global` rows (0: the batch is the whole of it). Random
/// draws made per example (crops, masks, noise) are drawn for the global batch and sliced, so
/// that N ranks see exactly the views and masks one process of the global batch would.
struct BatchSlice {
  int64_t offset = 0;
  int64_t global = 0;

  /// The rows of the global batch, for a rank batch of `rows`.
  int64_t global_rows(int64_t rows) const { return global > 0 ? global : rows; }
};

}  // namespace pretext
