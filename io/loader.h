#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>

#include "io/dataset.h"

namespace pretext::io {

/// A batch in the order the loader was given: pixels [B, C, H, W], labels [B] (int64, -1 when
/// unlabelled), acquisition dates [B, frames] (int64 days since 1970-01-01; undefined unless
/// every example has them), and the data set indices it holds.
struct Batch {
  at::Tensor pixels;
  at::Tensor labels;
  at::Tensor acquired_at;
  std::vector<int64_t> indices;
  int64_t position = 0;  ///< batch number within the order
};

/// Loader settings.
///   Loader loader(dataset, order, LoaderOptions().batch_size(256).workers(2));
struct LoaderOptions {
  /// Examples per batch.
  TORCH_ARG(int64_t, batch_size) = 256;
  /// Threads reading and decoding examples.
  TORCH_ARG(int64_t, workers) = 2;
  /// Batches ready or being read ahead of the consumer; bounds memory.
  TORCH_ARG(int64_t, prefetch) = 4;
  /// Drop a last batch smaller than batch_size (training wants equal batches).
  TORCH_ARG(bool, drop_last) = true;
  /// Batches in page-locked memory, so that copies to a CUDA device run asynchronously (needs a
  /// CUDA LibTorch; set it when the device is CUDA).
  TORCH_ARG(bool, pin_memory) = false;
};

/// Reads the examples of `order` in batches on worker threads. Batches come out in the order's
/// sequence whatever thread finished first, so a (seed, epoch) order gives the same batches on
/// every run. A failure in a worker is rethrown by `next()`.
class Loader {
 public:
  /// Starts at batch `first_batch` of the order (a resumed run continues mid-epoch).
  Loader(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> order, LoaderOptions options,
         int64_t first_batch = 0);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// The next batch, or nullopt after the last one.
  std::optional<Batch> next();
  /// Batches in the whole order.
  int64_t batches() const { return batches_; }

 private:
  void work();
  Batch assemble(int64_t position) const;
  /// [B, frames] days, undefined unless every example has the same number of dates.
  at::Tensor acquisition_dates(const std::vector<int64_t>& indices) const;

  std::shared_ptr<const Dataset> dataset_;
  std::vector<int64_t> order_;
  LoaderOptions options_;
  int64_t batches_ = 0;

  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t next_to_claim_ = 0;    // guarded by mutex_
  int64_t next_to_deliver_ = 0;  // guarded by mutex_
  std::map<int64_t, Batch> ready_;
  std::exception_ptr failure_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace pretext::io
