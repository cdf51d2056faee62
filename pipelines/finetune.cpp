#include "pipelines/finetune.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/device.h"
#include "domains/sampler.h"
#include "io/loader.h"
#include "pipelines/checkpoint.h"
#include "pipelines/optimizer.h"

namespace pretext::pipelines {
namespace F = torch::nn::functional;

void FinetuneOptions::visit_fields(FieldVisitor& visit) {
  visit("label_fraction", label_fraction_, Check::between(1e-6, 1.0));
  visit("per_class", per_class_, Check::at_least(0));
  visit("seeds", seeds_, Check::at_least(0).non_empty());
  visit("epochs", epochs_, Check::at_least(1));
  visit("batch_size", batch_size_, Check::at_least(1));
  visit("optimizer", optimizer_);
  visit("lr", lr_, Check::above(0));
  visit("weight_decay", weight_decay_, Check::at_least(0));
  visit("layer_decay", layer_decay_, Check::between(1e-6, 1.0));
  visit("freeze_encoder", freeze_encoder_);
  visit("validate", validate_);
  visit("patience", patience_, Check::at_least(0));
  visit("crop_scale_min", crop_scale_min_, Check::between(0.01, 1.0));
  visit("hflip_p", hflip_p_, Check::between(0.0, 1.0));
}

std::vector<int64_t> few_label_subset(const std::vector<int64_t>& labels,
                                      const std::vector<int64_t>& train,
                                      const FinetuneOptions& options, uint64_t seed) {
  const auto per_class = [&](int64_t class_size) {
    if (options.per_class() > 0) return options.per_class();
    return std::max<int64_t>(1, std::llround(options.label_fraction() * class_size));
  };
  return stratified_draw(train, labels, per_class, seed);
}

ClassifierImpl::ClassifierImpl(std::shared_ptr<methods::BackboneImpl> encoder, int64_t classes)
    : encoder_(register_module("encoder", std::move(encoder))),
      head_(register_module("head", torch::nn::Linear(encoder_->feature_dim(), classes))) {}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& images) {
  return head_->forward(encoder_->forward(images));
}

namespace {

/// Per encoder layer (and the head) its learning rate, each split into decayed weights and
/// never-decayed biases / normalisation weights.
std::vector<ParameterGroup> layer_groups(ClassifierImpl& model, const FinetuneOptions& o) {
  auto& encoder = model.encoder();
  const int64_t layers = encoder.layer_count();
  std::vector<ParameterGroup> groups;
  for (int64_t layer = 0; layer <= layers; ++layer) {
    const double lr = o.lr() * std::pow(o.layer_decay(), static_cast<double>(layers - layer));
    groups.push_back({{}, lr, o.weight_decay()});
    groups.push_back({{}, lr, 0.0});
  }
  for (auto& item : model.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    const auto& name = item.key();
    const bool in_encoder = name.rfind("encoder.", 0) == 0;
    const int64_t layer = in_encoder ? encoder.layer_of(name.substr(8)) : layers;
    groups[2 * layer + (decays(name, item.value()) ? 0 : 1)].parameters.push_back(item.value());
  }
  return groups;
}

/// Copies of every parameter and buffer, to restore the best epoch.
std::vector<torch::Tensor> snapshot(torch::nn::Module& model) {
  std::vector<torch::Tensor> state;
  for (const auto& t : model.parameters()) state.push_back(t.detach().clone());
  for (const auto& t : model.buffers()) state.push_back(t.detach().clone());
  return state;
}

void restore(torch::nn::Module& model, const std::vector<torch::Tensor>& state) {
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& t : model.parameters()) t.copy_(state[i++]);
  for (auto& t : model.buffers()) t.copy_(state[i++]);
}

/// The encoder with a fresh head whose start depends on the seed only: N(0, 0.01) weights, zero
/// bias; on the device, the encoder frozen when asked.
Classifier make_classifier(const FinetuneContext& context, const FinetuneOptions& options,
                           int64_t classes, int64_t seed) {
  Classifier model(context.make_encoder(), classes);
  {
    torch::NoGradGuard no_grad;
    auto generator = at::make_generator<at::CPUGeneratorImpl>(domains::mix_seed(seed, 3));
    auto& head = model->head();
    head->weight.copy_(torch::randn(head->weight.sizes(), generator) * 0.01);
    head->bias.zero_();
  }
  if (options.freeze_encoder())
    for (auto& p : model->encoder().parameters()) p.requires_grad_(false);
  model->to(context.device);
  methods::to_channels_last(*model);  // as the trainer runs it
  return model;
}

/// Fine-tuning's training augmentation: the pretraining one's size, normalisation and symmetries,
/// random resized crops and flips as the options say, no intensity changes, and the window
/// evaluation uses (the first preset), so that training and test inputs agree.
domains::AugmentOptions training_augment(domains::AugmentOptions augment,
                                         const FinetuneOptions& options) {
  augment.crop_scale_min(options.crop_scale_min())
      .crop_scale_max(1.0)
      .hflip_p(options.hflip_p())
      .jitter_p(0.0)
      .blur_p(0.0)
      .bias_field_p(0.0)
      .noise_p(0.0)
      .window_level_jitter(0.0)
      .window_width_jitter(0.0);
  if (!augment.window_levels().empty()) {
    augment.window_levels({augment.window_levels()[0]});
    augment.window_widths({augment.window_widths()[0]});
  }
  return augment;
}

/// One epoch over `order`; the views of step s are drawn from (seed, s), and `step` counts on.
void train_epoch(Classifier& model, torch::optim::Optimizer& optimizer,
                 const domains::Augment& augment, const FinetuneContext& context,
                 const FinetuneOptions& options, const std::vector<int64_t>& order, int64_t seed,
                 int64_t& step) {
  io::Loader loader(context.dataset, order,
                    io::LoaderOptions()
                        .batch_size(options.batch_size())
                        .workers(context.workers)
                        .drop_last(false)
                        .pin_memory(context.device.is_cuda()));
  model->train();
  if (options.freeze_encoder()) model->encoder().eval();
  while (auto batch = loader.next()) {
    auto generator = at::make_generator<at::CPUGeneratorImpl>(
        domains::mix_seed(domains::mix_seed(seed, 4), static_cast<uint64_t>(step++)));
    const auto views = augment(batch->pixels.to(context.device, /*non_blocking=*/true), generator)
                           .contiguous(torch::MemoryFormat::ChannelsLast);
    const auto loss =
        F::cross_entropy(model->forward(views), to_device(batch->labels, context.device));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
}

}  // namespace

FinetuneSeedResult finetune_seed(const FinetuneContext& context, const EvalSplit& split,
                                 const FinetuneOptions& options, int64_t seed) {
  const auto& dataset = context.dataset;
  const auto labels = labels_of(*dataset).labels;
  const auto labelled = few_label_subset(labels, split.train, options, static_cast<uint64_t>(seed));
  auto model =
      make_classifier(context, options, static_cast<int64_t>(dataset->class_names().size()), seed);
  auto optimizer = make_optimizer(options.optimizer(), layer_groups(*model, options), 0.9);
  const domains::Augment augment(training_augment(context.augment, options));
  const auto scores_of = [&](const std::vector<int64_t>& indices) {
    const auto features =
        extract_features(model->encoder(), dataset, indices, context.augment, context.device,
                         context.eval_batch_size, context.workers);
    torch::NoGradGuard no_grad;
    return model->head()->forward(features.to(context.device)).cpu();
  };
  const auto truth_of = [&](const std::vector<int64_t>& indices) {
    std::vector<int64_t> truth;
    for (const int64_t i : indices) truth.push_back(labels[i]);
    return torch::tensor(truth, torch::kInt64);
  };
  const auto val_labels = truth_of(split.val);

  FinetuneSeedResult result;
  result.seed = seed;
  result.labelled = static_cast<int64_t>(labelled.size());
  const bool validate = options.validate() && !split.val.empty();
  double best_top1 = -1.0;
  std::vector<torch::Tensor> best;
  const domains::EpochSampler sampler(result.labelled, domains::mix_seed(seed, 2));
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= options.epochs(); ++epoch) {
    std::vector<int64_t> order;
    for (const int64_t j : sampler.order(epoch)) order.push_back(labelled[j]);
    train_epoch(model, *optimizer, augment, context, options, order, seed, step);
    result.epochs_run = epoch;
    if (!validate) {
      result.best_epoch = epoch;
      continue;
    }
    const double top1 = classification_metrics(scores_of(split.val), val_labels).top1;
    if (context.log)
      context.log->file_only("seed " + std::to_string(seed) + " epoch " + std::to_string(epoch) +
                             " validation top-1 " + std::to_string(top1));
    if (top1 > best_top1) {
      best_top1 = top1;
      best = snapshot(*model);
      result.best_epoch = epoch;
      if (!context.run_dir.empty())
        save_checkpoint(context.run_dir.finetune_checkpoint(seed), *model, nullptr,
                        TrainState{step, epoch, 0}, "");
    } else if (options.patience() > 0 && epoch - result.best_epoch >= options.patience()) {
      break;
    }
  }
  if (validate)
    restore(*model, best);
  else if (!context.run_dir.empty())
    save_checkpoint(context.run_dir.finetune_checkpoint(seed), *model, nullptr,
                    TrainState{step, result.epochs_run, 0}, "");
  result.test = classification_metrics(scores_of(split.test), truth_of(split.test));
  return result;
}

}  // namespace pretext::pipelines
