#include "io/loader.h"

#include <torch/types.h>

namespace pretext::io {

Loader::Loader(std::shared_ptr<const Dataset> dataset, std::vector<int64_t> order,
               LoaderOptions options, int64_t first_batch)
    : dataset_(std::move(dataset)), order_(std::move(order)), options_(std::move(options)) {
  const auto count = static_cast<int64_t>(order_.size());
  const int64_t size = std::max<int64_t>(1, options_.batch_size());
  batches_ = options_.drop_last() ? count / size : (count + size - 1) / size;
  next_to_claim_ = next_to_deliver_ = std::clamp<int64_t>(first_batch, 0, batches_);
  const int64_t threads = std::max<int64_t>(1, options_.workers());
  for (int64_t t = 0; t < threads; ++t) workers_.emplace_back([this] { work(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void Loader::work() {
  const int64_t ahead = std::max<int64_t>(1, options_.prefetch());
  for (;;) {
    int64_t position;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || failure_ || next_to_claim_ >= batches_ ||
               next_to_claim_ < next_to_deliver_ + ahead;
      });
      if (stopping_ || failure_ || next_to_claim_ >= batches_) return;
      position = next_to_claim_++;
    }
    try {
      Batch batch = assemble(position);
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(position, std::move(batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!failure_) failure_ = std::current_exception();
    }
    changed_.notify_all();
  }
}

Batch Loader::assemble(int64_t position) const {
  const int64_t begin = position * options_.batch_size();
  const int64_t end = std::min<int64_t>(begin + options_.batch_size(), order_.size());
  Batch batch;
  batch.position = position;
  batch.labels = torch::empty({end - begin}, torch::kInt64);
  auto labels = batch.labels.accessor<int64_t, 1>();
  // The first example gives the batch its shape; the others are written into their slots.
  Example first = dataset_->get(order_[begin]);
  std::vector<int64_t> shape = {end - begin};
  shape.insert(shape.end(), first.pixels.sizes().begin(), first.pixels.sizes().end());
  batch.pixels = torch::empty(shape, first.pixels.options().pinned_memory(options_.pin_memory()));
  batch.pixels[0].copy_(first.pixels);
  labels[0] = first.label;
  batch.indices.push_back(order_[begin]);
  for (int64_t i = begin + 1; i < end; ++i) {
    labels[i - begin] = dataset_->get_into(order_[i], batch.pixels[i - begin]);
    batch.indices.push_back(order_[i]);
  }
  batch.acquired_at = acquisition_dates(batch.indices);
  return batch;
}

at::Tensor Loader::acquisition_dates(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> days;
  size_t frames = 0;
  for (const int64_t index : indices) {
    const auto dates = dataset_->acquired_at(index);
    if (dates.empty() || (frames > 0 && dates.size() != frames)) return {};
    frames = dates.size();
    days.insert(days.end(), dates.begin(), dates.end());
  }
  if (days.empty()) return {};
  return torch::tensor(days, torch::kInt64).view({-1, static_cast<int64_t>(frames)});
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_to_deliver_ >= batches_) return std::nullopt;
  changed_.wait(lock, [&] { return failure_ || ready_.count(next_to_deliver_) > 0; });
  if (failure_) std::rethrow_exception(failure_);
  auto found = ready_.find(next_to_deliver_);
  Batch batch = std::move(found->second);
  ready_.erase(found);
  ++next_to_deliver_;
  lock.unlock();
  changed_.notify_all();
  return batch;
}

}  // namespace pretext::io
