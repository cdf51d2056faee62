#include "pipelines/probe.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/errors.h"
#include "base/torch_compat.h"

namespace pretext::pipelines {
namespace F = torch::nn::functional;

void ProbeOptions::visit_fields(FieldVisitor& visit) {
  visit("lr", lr_, Check::above(0).non_empty());
  visit("weight_decay", weight_decay_, Check::at_least(0).non_empty());
  visit("epochs", epochs_, Check::at_least(1));
  visit("batch_size", batch_size_, Check::at_least(1));
  // The sweep trains every head at once with its own update: Adam or SGD only.
  visit("optimizer", optimizer_, Check::one_of({"adam", "sgd"}));
  visit("schedule", schedule_);
  visit("standardize", standardize_);
}

double lr_factor(LrSchedule schedule, int64_t epoch, int64_t epochs) {
  if (schedule == LrSchedule::kConstant) return 1.0;
  return 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(epoch) / static_cast<double>(epochs)));
}

namespace {

/// The heads' weights [H, D, C] and biases [H, 1, C] with their optimiser state, updated by hand
/// so that every head has its own learning rate and weight decay ([H, 1, 1] tensors).
class HeadBatch {
 public:
  HeadBatch(int64_t dim, int64_t classes, const ProbeOptions& options, at::Generator& generator,
            const c10::Device& device)
      : options_(options) {
    const int64_t heads = options.heads();
    std::vector<double> lr, decay;
    for (const double wd : options.weight_decay())
      for (const double rate : options.lr()) {
        lr.push_back(rate);
        decay.push_back(wd);
      }
    lr_ = torch::tensor(lr, torch::kFloat32).view({heads, 1, 1}).to(device);
    decay_ = torch::tensor(decay, torch::kFloat32).view({heads, 1, 1}).to(device);
    // Every head starts from the same N(0, 0.01) weights, so heads differ by their settings only.
    const auto start = (torch::randn({dim, classes}, generator, torch::kFloat32) * 0.01).to(device);
    weights_ = start.expand({heads, dim, classes}).clone().requires_grad_(true);
    bias_ = torch::zeros({heads, 1, classes}, start.options()).requires_grad_(true);
    for (const auto& p : {weights_, bias_}) {
      first_.push_back(torch::zeros_like(p));
      second_.push_back(torch::zeros_like(p));
    }
  }

  torch::Tensor weights() const { return weights_.detach().cpu(); }
  /// Every head's learning rate times `factor` from the next step on (the schedule).
  void scale_lr(double factor) { lr_factor_ = factor; }
  torch::Tensor bias() const { return bias_.detach().squeeze(1).cpu(); }

  /// [N, D] -> [H, N, C]
  torch::Tensor logits(const torch::Tensor& features) const {
    return torch::matmul(features.unsqueeze(0), weights_) + bias_;
  }

  /// One update on a batch: `targets` [B, C] when defined (multi-label), else `labels` [B].
  void step(const torch::Tensor& features, const torch::Tensor& labels,
            const torch::Tensor& targets) {
    const auto scores = logits(features);
    const int64_t heads = scores.size(0), classes = scores.size(2);
    // The mean over heads x batch (x labels) times heads: each head's gradient is that of its own
    // mean loss.
    const auto mean_loss =
        targets.defined() ? F::binary_cross_entropy_with_logits(scores, targets.expand_as(scores))
                          : F::cross_entropy(scores.reshape({-1, classes}), labels.repeat({heads}));
    const auto loss = mean_loss * static_cast<double>(heads);
    weights_.mutable_grad() = torch::Tensor();
    bias_.mutable_grad() = torch::Tensor();
    loss.backward();
    torch::NoGradGuard no_grad;
    ++steps_;
    update(weights_, weights_.grad() + decay_ * weights_, 0);
    update(bias_, bias_.grad(), 1);
  }

 private:
  void update(torch::Tensor& param, const torch::Tensor& grad, size_t slot) {
    auto& m = first_[slot];
    if (options_.optimizer() == OptimizerKind::kSgd) {
      m.mul_(0.9).add_(grad);  // torch.optim.SGD with momentum 0.9, no dampening
      param.sub_(lr_ * lr_factor_ * m);
      return;
    }
    // torch.optim.Adam with betas (0.9, 0.999) and eps 1e-8.
    auto& v = second_[slot];
    m.mul_(0.9).add_(grad, 0.1);
    v.mul_(0.999).addcmul_(grad, grad, 0.001);
    const double correction1 = 1.0 - std::pow(0.9, static_cast<double>(steps_));
    const double correction2 = 1.0 - std::pow(0.999, static_cast<double>(steps_));
    const auto denominator = (v.sqrt() / std::sqrt(correction2)).add_(1e-8);
    param.sub_(lr_ * (lr_factor_ / correction1) * m / denominator);
  }

  const ProbeOptions& options_;
  torch::Tensor lr_, decay_, weights_, bias_;
  double lr_factor_ = 1.0;
  std::vector<torch::Tensor> first_, second_;
  int64_t steps_ = 0;
};

/// Every head's metrics on `data` (scored in blocks of examples) and the score a sweep chooses
/// on (top-1, or mean average precision for multi-label targets).
struct HeadScores {
  std::vector<ClassificationMetrics> single;
  std::vector<MultiLabelMetrics> multi;
  std::vector<double> choice;
};

HeadScores score_heads(const HeadBatch& heads, const LabelledFeatures& data, int64_t count) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> blocks;
  constexpr int64_t kBlock = 4096;
  for (int64_t start = 0; start < data.features.size(0); start += kBlock)
    blocks.push_back(heads.logits(data.features.slice(0, start, start + kBlock)));
  const auto scores = torch::cat(blocks, 1).cpu();
  const auto labels = data.labels.defined() ? data.labels.cpu() : data.labels;
  const auto targets = data.targets.defined() ? data.targets.cpu() : data.targets;
  HeadScores out;
  for (int64_t h = 0; h < count; ++h) {
    if (targets.defined()) {
      out.multi.push_back(multi_label_metrics(scores[h], targets));
      out.choice.push_back(out.multi.back().mean_average_precision);
    } else {
      out.single.push_back(classification_metrics(scores[h], labels));
      out.choice.push_back(out.single.back().top1);
    }
  }
  return out;
}

LabelledFeatures standardised(const LabelledFeatures& data, const torch::Tensor& mean,
                              const torch::Tensor& std) {
  if (!data.features.defined()) return data;
  return {(data.features - mean) / std, data.labels, data.targets};
}

LabelledFeatures on_device(const LabelledFeatures& data, const c10::Device& device) {
  const auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device) : t; };
  return {move(data.features), move(data.labels), move(data.targets)};
}

}  // namespace

ProbeResult train_probes(const LabelledFeatures& train, const LabelledFeatures& val,
                         const LabelledFeatures& test, int64_t classes, const ProbeOptions& options,
                         uint64_t seed, const c10::Device& device) {
  const int64_t heads = options.heads();
  if (heads > 1 && !val.features.defined())
    throw ConfigError("a probe sweep over " + std::to_string(heads) +
                      " settings needs a validation set to choose on");
  const compat::ExactFp32 exact;
  LabelledFeatures tr = on_device(train, device), va = on_device(val, device),
                   te = on_device(test, device);
  if (options.standardize()) {
    const auto mean = tr.features.mean(0);
    // A constant feature has std 0; 1e-6 keeps it finite (and 0 after centring).
    const auto std = tr.features.std(0).clamp_min(1e-6);
    tr = standardised(tr, mean, std);
    va = standardised(va, mean, std);
    te = standardised(te, mean, std);
  }
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  HeadBatch batch(tr.features.size(1), classes, options, generator, device);
  const int64_t n = tr.features.size(0);
  for (int64_t epoch = 0; epoch < options.epochs(); ++epoch) {
    batch.scale_lr(lr_factor(options.schedule(), epoch, options.epochs()));
    const auto order = torch::randperm(n, generator, torch::kInt64).to(device);
    for (int64_t start = 0; start < n; start += options.batch_size()) {
      const auto rows = order.slice(0, start, start + options.batch_size());
      batch.step(tr.features.index_select(0, rows),
                 tr.targets.defined() ? torch::Tensor() : tr.labels.index_select(0, rows),
                 tr.targets.defined() ? tr.targets.index_select(0, rows) : torch::Tensor());
    }
  }
  ProbeResult result;
  result.multi_label = tr.targets.defined();
  const auto tested = score_heads(batch, te, heads);
  const auto validated = va.features.defined() ? score_heads(batch, va, heads) : HeadScores();
  for (size_t h = 0; h < static_cast<size_t>(heads); ++h) {
    ProbeHead head;
    head.lr = options.lr()[h % options.lr().size()];
    head.weight_decay = options.weight_decay()[h / options.lr().size()];
    head.val_score = validated.choice.empty() ? 0.0 : validated.choice[h];
    if (result.multi_label)
      head.multi_label = tested.multi[h];
    else
      head.test = tested.single[h];
    result.heads.push_back(head);
  }
  result.weights = batch.weights();
  result.bias = batch.bias();
  for (size_t h = 1; h < result.heads.size(); ++h)
    if (result.heads[h].val_score > result.heads[result.chosen].val_score) result.chosen = h;
  return result;
}

}  // namespace pretext::pipelines
