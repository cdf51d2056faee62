#include "methods/moco.h"

#include <algorithm>
#include <tuple>
#include <vector>

#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/device.h"
#include "methods/losses.h"

namespace pretext::methods {
namespace F = torch::nn::functional;

void MocoOptions::visit_fields(FieldVisitor& visit) {
  visit("version", version_, Check::between(2, 3));
  visit("temperature", temperature_, Check::above(0));
  visit("projection_dim", projection_dim_, Check::between(1, 1 << 16));
  visit("projection_hidden_dim", projection_hidden_dim_, Check::between(1, 1 << 16));
  visit("projection_layers", projection_layers_, Check::between(1, 8));
  visit("predictor_hidden_dim", predictor_hidden_dim_, Check::between(1, 1 << 16));
  visit("queue_size", queue_size_, Check::between(1, 1 << 22));
  visit("momentum", momentum_, Check::between(0, 1));
  visit("shuffle_bn_splits", shuffle_bn_splits_, Check::between(1, 1024));
}

torch::Tensor forward_in_splits(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                                const torch::Tensor& x, int64_t splits,
                                const torch::Tensor& order) {
  const int64_t rows = x.size(0);
  const int64_t parts = std::max<int64_t>(1, std::min(splits, rows / 2));
  const auto index = to_device(order, x.device());
  std::vector<torch::Tensor> outputs;
  for (const auto& part : x.index_select(0, index).chunk(parts)) outputs.push_back(forward(part));
  // Row order[i] of x went to position i: put it back.
  const auto shuffled = torch::cat(outputs);
  return torch::empty_like(shuffled).index_copy_(0, index, shuffled);
}

MocoImpl::MocoImpl(std::shared_ptr<BackboneImpl> backbone,
                   std::shared_ptr<BackboneImpl> momentum_backbone, const MocoOptions& options)
    : MomentumMethodImpl(std::move(backbone), std::move(momentum_backbone),
                         ProjectionHeadOptions(0, options.projection_dim())
                             .hidden_dim(options.projection_hidden_dim())
                             .layers(options.projection_layers()),
                         options.version() == 3 ? options.predictor_hidden_dim() : 0,
                         options.momentum()),
      options_(options) {
  if (options.version() == 2) {
    // Random unit vectors until real keys replace them, as in the reference.
    queue_ = register_buffer(
        "queue", F::normalize(torch::randn({options.queue_size(), options.projection_dim()}),
                              F::NormalizeFuncOptions().dim(1)));
    queue_position_ = MirroredInt(*this, "queue_position", 0);
    shuffle_draws_ = StepDraws(*this, "shuffle_seed");
  }
}

void MocoImpl::after_optimizer_step(int64_t step, int64_t total_steps) {
  MomentumMethodImpl::after_optimizer_step(step, total_steps);
  if (options_.version() == 2) shuffle_draws_.set_step(step);
}

int64_t MocoImpl::shuffle_bn_parts(int64_t rows) const {
  return std::max<int64_t>(1, std::min(options_.shuffle_bn_splits(), rows / 2));
}

std::optional<std::pair<std::string, std::string>> MocoImpl::data_parallel_mismatch(
    int64_t ranks, int64_t rank_batch) const {
  const int64_t global = ranks * rank_batch, parts = shuffle_bn_parts(global);
  if (options_.version() != 2 || options_.shuffle_bn_splits() == 1 ||
      (parts % ranks == 0 && global % parts == 0))
    return std::nullopt;
  return std::make_pair("shuffle_bn_splits",
                        "the global batch of " + std::to_string(global) +
                            " goes through the encoders in " + std::to_string(parts) +
                            " shuffle-BN sub-batches, which must be a multiple of the " +
                            std::to_string(ranks) + " ranks and divide the global batch (e.g. " +
                            std::to_string(ranks) + " or " + std::to_string(2 * ranks) + ")");
}

void MocoImpl::set_group(Collectives* group, bool sync_batch_norm) {
  const bool shuffle_bn = options_.version() == 2 && options_.shuffle_bn_splits() > 1;
  MomentumMethodImpl::set_group(group, sync_batch_norm && !shuffle_bn);
}

std::pair<torch::Tensor, torch::Tensor> MocoImpl::split_batch_projections(
    const torch::Tensor& views, at::Generator& generator) {
  const int64_t rows = views.size(0), global = batch_slice().global_rows(rows);
  const auto in_order = torch::arange(rows, torch::kInt64);
  const auto shuffled = torch::randperm(global, generator, torch::kInt64);
  const int64_t ranks = group() ? group()->size() : 1;
  const int64_t splits = shuffle_bn_parts(global) / ranks;  // this rank's share
  const auto online_part = [&](const torch::Tensor& x) { return online(x); };
  const auto target_part = [&](const torch::Tensor& x) { return target(x); };
  const auto queries = forward_in_splits(online_part, views, splits, in_order);
  if (!group()) return {queries, forward_in_splits(target_part, views, splits, shuffled)};
  // This rank takes the shuffled positions [offset, offset + rows) of the global batch.
  const auto mine = shuffled.narrow(0, batch_slice().offset, rows);
  const auto images = gathered(views).index_select(0, to_device(mine, views.device()));
  const auto keys_shuffled = gathered(forward_in_splits(target_part, images, splits, in_order));
  // Position i of the shuffled order holds global row shuffled[i]: put the rows back.
  const auto index = to_device(shuffled, keys_shuffled.device());
  return {queries, torch::empty_like(keys_shuffled).index_copy_(0, index, keys_shuffled)};
}

StepOutput MocoImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(views.size() == 2, "MoCo takes 2 views, got ", views.size());
  StepOutput out;
  torch::Tensor q1, q2, k1, k2;
  if (options_.version() == 2) {
    // Each view through each encoder on its own, in shuffle-BN sub-batches; the keys' shuffles
    // are drawn from (seed, step).
    auto generator = shuffle_draws_.generator();
    std::tie(q1, k1) = split_batch_projections(views[0], generator);
    std::tie(q2, k2) = split_batch_projections(views[1], generator);
    // The queue as it was before this batch: a copy, since enqueue overwrites it in place.
    const auto negatives = queue_.clone();
    // k1, k2 hold the global batch's keys; this rank's queries take their own rows'.
    const auto own = [&](const torch::Tensor& k) {
      return k.narrow(0, group() ? batch_slice().offset : 0, q1.size(0));
    };
    out.loss = (info_nce_with_queue(q1, own(k2), negatives, options_.temperature()) +
                info_nce_with_queue(q2, own(k1), negatives, options_.temperature())) /
               2;
    // Every rank enqueues the global batch's keys in the same order: the queues stay equal.
    enqueue(torch::cat({k1, k2}));
  } else {
    // Each view through each encoder on its own: batch statistics never mix a query with its
    // key (v3 has no shuffle-BN; its reference synchronises BN across GPUs).
    q1 = online(views[0]);
    q2 = online(views[1]);
    // Every rank's keys are the negatives (the reference's concat_all_gather).
    k1 = gathered(target(views[0]));
    k2 = gathered(target(views[1]));
    const int64_t offset = group() ? batch_slice().offset : 0;
    out.loss = info_nce_in_batch(q1, k2, options_.temperature(), offset) +
               info_nce_in_batch(q2, k1, options_.temperature(), offset);
  }
  out.logs["embedding_std"] = embedding_std(gathered(q1));
  return out;
}

void MocoImpl::enqueue(const torch::Tensor& keys) {
  torch::NoGradGuard no_grad;
  const int64_t size = queue_.size(0);
  auto normalised = F::normalize(keys, F::NormalizeFuncOptions().dim(1));
  if (normalised.size(0) > size) normalised = normalised.slice(0, normalised.size(0) - size);
  const int64_t start = queue_position_.get();
  const auto rows =
      (torch::arange(normalised.size(0), queue_.options().dtype(torch::kInt64)) + start)
          .remainder(size);
  queue_.index_copy_(0, rows, normalised.to(queue_.dtype()));
  queue_position_.set((start + normalised.size(0)) % size);
}

}  // namespace pretext::methods
