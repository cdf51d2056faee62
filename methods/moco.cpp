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
    steps_ = MirroredInt(*this, "steps", 0);
    shuffle_seed_ = MirroredInt(*this, "shuffle_seed", draw_method_seed());
  }
}

void MocoImpl::after_optimizer_step(int64_t step, int64_t total_steps) {
  MomentumMethodImpl::after_optimizer_step(step, total_steps);
  if (options_.version() == 2) steps_.set(step);
}

std::pair<torch::Tensor, torch::Tensor> MocoImpl::split_batch_projections(
    const torch::Tensor& views, at::Generator& generator) {
  const int64_t rows = views.size(0);
  const auto in_order = torch::arange(rows, torch::kInt64);
  const auto shuffled = torch::randperm(rows, generator, torch::kInt64);
  const auto splits = options_.shuffle_bn_splits();
  return {
      forward_in_splits([&](const torch::Tensor& x) { return online(x); }, views, splits, in_order),
      forward_in_splits([&](const torch::Tensor& x) { return target(x); }, views, splits,
                        shuffled)};
}

StepOutput MocoImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(views.size() == 2, "MoCo takes 2 views, got ", views.size());
  StepOutput out;
  torch::Tensor q1, q2, k1, k2;
  if (options_.version() == 2) {
    // Each view through each encoder on its own, in shuffle-BN sub-batches; the keys' shuffles
    // are drawn from (seed, step).
    auto generator = step_generator(shuffle_seed_.get(), steps_.get());
    std::tie(q1, k1) = split_batch_projections(views[0], generator);
    std::tie(q2, k2) = split_batch_projections(views[1], generator);
    // The queue as it was before this batch: a copy, since enqueue overwrites it in place.
    const auto negatives = queue_.clone();
    out.loss = (info_nce_with_queue(q1, k2, negatives, options_.temperature()) +
                info_nce_with_queue(q2, k1, negatives, options_.temperature())) /
               2;
    enqueue(torch::cat({k1, k2}));
  } else {
    // Each view through each encoder on its own: batch statistics never mix a query with its
    // key (v3 has no shuffle-BN; its reference synchronises BN across GPUs).
    q1 = online(views[0]);
    q2 = online(views[1]);
    k1 = target(views[0]);
    k2 = target(views[1]);
    out.loss = info_nce_in_batch(q1, k2, options_.temperature()) +
               info_nce_in_batch(q2, k1, options_.temperature());
  }
  out.logs["embedding_std"] = embedding_std(q1);
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
