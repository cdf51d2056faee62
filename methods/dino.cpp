#include "methods/dino.h"

#include <cmath>
#include <limits>

#include <torch/nn/functional.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/types.h>

#include "methods/batch_norm.h"
#include "methods/losses.h"
#include "methods/momentum.h"

namespace pretext::methods {
namespace F = torch::nn::functional;

void DinoOptions::visit_fields(FieldVisitor& visit) {
  visit("out_dim", out_dim_, Check::between(2, 1 << 20));
  visit("hidden_dim", hidden_dim_, Check::between(1, 1 << 16));
  visit("bottleneck_dim", bottleneck_dim_, Check::between(1, 1 << 16));
  visit("head_layers", head_layers_, Check::between(1, 8));
  visit("use_bn", use_bn_);
  visit("norm_last_layer", norm_last_layer_);
  visit("student_temp", student_temp_, Check::above(0));
  visit("teacher_temp", teacher_temp_, Check::above(0));
  visit("warmup_teacher_temp", warmup_teacher_temp_, Check::above(0));
  visit("warmup_teacher_steps", warmup_teacher_steps_, Check::at_least(0));
  visit("momentum_teacher", momentum_teacher_, Check::between(0, 1));
  visit("center_momentum", center_momentum_, Check::between(0, 1));
  visit("freeze_last_layer_steps", freeze_last_layer_steps_, Check::at_least(0));
  visit("local_crops", local_crops_, Check::between(0, 32));
  visit("centering", centering_, Check::one_of({"centre", "sinkhorn_knopp"}));
  visit("sinkhorn_iterations", sinkhorn_iterations_, Check::between(1, 100));
  visit("koleo_weight", koleo_weight_, Check::at_least(0));
}

DinoHeadImpl::DinoHeadImpl(int64_t in_dim, const DinoOptions& options, int64_t patch_out_dim) {
  mlp_ = register_module("mlp", torch::nn::Sequential());
  int64_t width = in_dim;
  for (int64_t layer = 0; layer < options.head_layers(); ++layer) {
    const bool last = layer == options.head_layers() - 1;
    const int64_t out = last ? options.bottleneck_dim() : options.hidden_dim();
    torch::nn::Linear linear(width, out);
    torch::NoGradGuard no_grad;
    linear->weight.normal_(0, 0.02);  // the reference's trunc_normal(std=0.02), zero bias
    linear->bias.zero_();
    mlp_->push_back(linear);
    if (last) break;
    if (options.use_bn()) mlp_->push_back(BatchNorm(BatchNormOptions(out)));
    mlp_->push_back(torch::nn::GELU());
    width = out;
  }
  last_v_ = register_parameter("last_weight_v",
                               torch::randn({options.out_dim(), options.bottleneck_dim()}) * 0.02);
  last_g_ = register_parameter("last_weight_g", torch::ones({options.out_dim(), 1}),
                               /*requires_grad=*/!options.norm_last_layer());
  if (patch_out_dim > 0) {
    patch_v_ = register_parameter("patch_last_weight_v",
                                  torch::randn({patch_out_dim, options.bottleneck_dim()}) * 0.02);
    patch_g_ = register_parameter("patch_last_weight_g", torch::ones({patch_out_dim, 1}),
                                  /*requires_grad=*/!options.norm_last_layer());
  }
}

torch::Tensor DinoHeadImpl::project(const torch::Tensor& features, const torch::Tensor& v,
                                    const torch::Tensor& g, bool freeze_last) {
  const auto x = F::normalize(mlp_->forward(features), F::NormalizeFuncOptions().dim(-1));
  const auto weight =
      freeze_last ? (g * v / v.norm(2, 1, true)).detach() : g * v / v.norm(2, 1, true);
  return torch::matmul(x, weight.t());
}

torch::Tensor DinoHeadImpl::forward(const torch::Tensor& features, bool freeze_last) {
  return project(features, last_v_, last_g_, freeze_last);
}

torch::Tensor DinoHeadImpl::forward_patches(const torch::Tensor& tokens, bool freeze_last) {
  return patch_v_.defined() ? project(tokens, patch_v_, patch_g_, freeze_last)
                            : project(tokens, last_v_, last_g_, freeze_last);
}

torch::Tensor dino_loss(const torch::Tensor& student, const torch::Tensor& targets_of_globals,
                        double student_temp, int64_t views, int64_t global_views) {
  const auto log_student =
      F::log_softmax(student / student_temp, F::LogSoftmaxFuncOptions(-1)).chunk(views);
  const auto targets = targets_of_globals.detach().chunk(global_views);
  auto total = torch::zeros({}, student.options());
  int64_t pairs = 0;
  for (int64_t t = 0; t < global_views; ++t)
    for (int64_t v = 0; v < views; ++v) {
      if (v == t) continue;  // a view is not asked to predict itself
      total = total + (-targets[t] * log_student[v]).sum(-1).mean();
      ++pairs;
    }
  return total / pairs;
}

torch::Tensor centred_targets(const torch::Tensor& teacher, const torch::Tensor& center,
                              double teacher_temp) {
  return F::softmax((teacher - center) / teacher_temp, F::SoftmaxFuncOptions(-1));
}

torch::Tensor sinkhorn_knopp_targets(const torch::Tensor& teacher, double teacher_temp,
                                     int64_t iterations, Collectives* group) {
  torch::NoGradGuard no_grad;
  // At least float32 (bf16 or fp16 outputs under autocast would overflow and round away the
  // normalisation).
  const auto precision = at::promote_types(teacher.scalar_type(), torch::kFloat32);
  const auto logits = teacher.to(precision) / teacher_temp;
  auto top = logits.numel() > 0 ? logits.max().reshape({1})
                                : torch::full({1}, -INFINITY, logits.options());
  if (group) top = group->all_gather(top).max().reshape({1});
  auto q = torch::exp(logits - top);  // [N, K]: rows are samples, the reference's Q transposed
  const auto global_sum = [&](torch::Tensor x) {
    if (group) group->sum({x});
    return x;
  };
  // Ranks may hold different numbers of rows (iBOT's masked patches).
  const double rows =
      global_sum(torch::full({1}, static_cast<double>(teacher.size(0)), precision)).item<double>();
  const double prototypes = static_cast<double>(teacher.size(1));
  // A sum that underflowed to 0 (logits far below the maximum) leaves its row or prototype at 0
  // rather than dividing by it.
  const auto positive = [](const torch::Tensor& x) {
    return x.clamp_min(std::numeric_limits<float>::min());  // float's, also for double
  };
  q = q / positive(global_sum(q.sum().reshape({1})));
  for (int64_t i = 0; i < iterations; ++i) {
    q = q / positive(global_sum(q.sum(0, /*keepdim=*/true))) / prototypes;
    q = q / positive(q.sum(1, /*keepdim=*/true)) / rows;
  }
  return (q * rows).to(teacher.scalar_type());
}

torch::Tensor koleo_loss(const torch::Tensor& features) {
  const auto precision = at::promote_types(features.scalar_type(), torch::kFloat32);
  const auto x = F::normalize(features.to(precision), F::NormalizeFuncOptions().eps(1e-8));
  torch::Tensor nearest;
  {
    torch::NoGradGuard no_grad;
    auto dots = torch::mm(x, x.t());
    dots.fill_diagonal_(-1);
    nearest = dots.argmax(1);
  }
  const auto distances = (x - x.index_select(0, nearest) + 1e-8).norm(2, 1);
  return -torch::log(distances + 1e-8).mean().to(features.scalar_type());
}

double warmed_up(double from, double to, int64_t steps, int64_t step) {
  if (step >= steps) return to;
  return from + static_cast<double>(step) / static_cast<double>(steps) * (to - from);
}

double teacher_temperature(const DinoOptions& options, int64_t step) {
  return warmed_up(options.warmup_teacher_temp(), options.teacher_temp(),
                   options.warmup_teacher_steps(), step);
}

torch::Tensor koleo_over_crops(const torch::Tensor& features, int64_t crops, Collectives* group) {
  auto total = torch::zeros({}, features.options());
  for (const auto& crop : features.chunk(crops))
    total = total + koleo_loss(group ? all_gather_with_grad(*group, crop) : crop);
  return total;
}

DinoImpl::DinoImpl(std::shared_ptr<BackboneImpl> student, std::shared_ptr<BackboneImpl> teacher,
                   const DinoOptions& options)
    : options_(options), student_(std::move(student)), teacher_(std::move(teacher)) {
  register_module("student", student_);
  register_module("teacher", teacher_);
  student_head_ = register_module("student_head", DinoHead(student_->feature_dim(), options));
  teacher_head_ = register_module("teacher_head", DinoHead(teacher_->feature_dim(), options));
  center_ = register_buffer("center", torch::zeros({1, options.out_dim()}));
  steps_ = MirroredInt(*this, "steps", 0);
  // The teacher starts as the student and learns only through the moving average.
  momentum_pairs_.add(*student_, *teacher_);
  momentum_pairs_.add(*student_head_, *teacher_head_);
}

void DinoImpl::sync_encoder_copies() { copy_weights(*teacher_, *student_); }

StepOutput DinoImpl::step(const std::vector<torch::Tensor>& views) {
  const int64_t count = static_cast<int64_t>(views.size());
  TORCH_CHECK(count == view_count(), "DINO takes ", view_count(), " views, got ", count);
  const std::vector<torch::Tensor> globals(views.begin(), views.begin() + 2);
  // One backbone pass per crop size, views kept in order (globals first).
  std::vector<torch::Tensor> student_out = {student_->forward(torch::cat(globals))};
  if (count > 2)
    student_out.push_back(
        student_->forward(torch::cat(std::vector<torch::Tensor>(views.begin() + 2, views.end()))));
  const auto student_logits = student_head_->forward(
      torch::cat(student_out), steps_.get() < options_.freeze_last_layer_steps());
  torch::Tensor teacher_logits, teacher_features;
  {
    torch::NoGradGuard no_grad;
    teacher_features = teacher_->forward(torch::cat(globals));
    teacher_logits = teacher_head_->forward(teacher_features);
  }
  const double temperature = teacher_temperature(options_, steps_.get());
  const bool sinkhorn = options_.centering() == "sinkhorn_knopp";
  const auto probabilities = sinkhorn
                                 ? sinkhorn_knopp_targets(teacher_logits, temperature,
                                                          options_.sinkhorn_iterations(), group())
                                 : centred_targets(teacher_logits, center_, temperature).detach();
  StepOutput out;
  out.loss = dino_loss(student_logits, probabilities, options_.student_temp(), count, 2);
  if (options_.koleo_weight() > 0) {
    const auto koleo = koleo_over_crops(student_out[0], 2, group());
    out.logs["koleo"] = koleo.detach();
    out.loss = out.loss + options_.koleo_weight() * koleo;
  }
  torch::NoGradGuard no_grad;
  out.logs["teacher_entropy"] =
      (-(probabilities * probabilities.clamp_min(1e-12).log()).sum(-1)).mean();
  // Collapse shows in these: to uniform when every sample's entropy nears log(out_dim), to one
  // prototype when the entropy of the batch's mean distribution nears 0.
  const auto mean_probabilities = global_mean(probabilities);
  out.logs["teacher_mean_entropy"] =
      (-(mean_probabilities * mean_probabilities.clamp_min(1e-12).log()).sum());
  out.logs["teacher_embedding_std"] = embedding_std(gathered(teacher_features));
  out.logs["teacher_temp"] = torch::tensor(temperature);
  // The centre follows the mean teacher output of the global batch (the reference all-reduces it).
  if (!sinkhorn)
    center_.mul_(options_.center_momentum())
        .add_(global_mean(teacher_logits).unsqueeze(0) * (1 - options_.center_momentum()));
  return out;
}

void DinoImpl::after_optimizer_step(int64_t step, int64_t total_steps) {
  steps_.set(step);
  const double m = cosine_momentum(options_.momentum_teacher(), step, total_steps);
  momentum_pairs_.update(m);
}

}  // namespace pretext::methods
