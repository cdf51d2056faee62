#include "methods/ibot.h"

#include <cmath>

#include <torch/nn/functional.h>

#include "base/device.h"
#include "base/errors.h"
#include "methods/collectives.h"
#include "methods/losses.h"

namespace pretext::methods {
namespace F = torch::nn::functional;

IbotOptions::IbotOptions() { dino_.out_dim(8192).local_crops(10); }

void IbotOptions::visit_fields(FieldVisitor& visit) {
  dino_.visit_fields(visit);
  visit("patch_out_dim", patch_out_dim_, Check::between(2, 1 << 20));
  visit("shared_head", shared_head_);
  visit("teacher_patch_temp", teacher_patch_temp_, Check::above(0));
  visit("warmup_teacher_patch_temp", warmup_teacher_patch_temp_, Check::above(0));
  visit("patch_center_momentum", patch_center_momentum_, Check::between(0, 1));
  visit("cls_weight", cls_weight_, Check::at_least(0));
  visit("patch_weight", patch_weight_, Check::at_least(0));
  visit("masked_images", masked_images_, Check::between(0, 1));
  visit("mask_ratio", mask_ratio_, Check::between(0, 0.9));
  visit("mask_ratio_var", mask_ratio_var_, Check::between(0, 0.9));
  visit("mask_aspect_ratio", mask_aspect_ratio_, Check::between(0.01, 1));
}

std::optional<std::pair<std::string, std::string>> IbotOptions::mismatch(
    const std::string& backbone) const {
  if (backbone != "vit") return {{"name", "ibot needs the vit backbone, not " + backbone}};
  if (mask_ratio_var_ > mask_ratio_)
    return {{"mask_ratio_var", "must not exceed mask_ratio (a ratio below 0)"}};
  if (shared_head_ && patch_out_dim_ != dino_.out_dim())
    return {{"patch_out_dim", "with shared_head the patches take the class token's " +
                                  std::to_string(dino_.out_dim()) + " prototypes (out_dim)"}};
  return std::nullopt;
}

IbotImpl::IbotImpl(std::shared_ptr<BackboneImpl> student, std::shared_ptr<BackboneImpl> teacher,
                   const IbotOptions& options)
    : options_(options),
      student_(std::dynamic_pointer_cast<ViTImpl>(student)),
      teacher_(std::dynamic_pointer_cast<ViTImpl>(teacher)) {
  if (!student_ || !teacher_) throw ConfigError("method", "name", "ibot needs the vit backbone");
  if (const auto bad = options_.mismatch("vit"))
    throw ConfigError("method", bad->first, bad->second);
  const auto& v = student_->options();
  if (!v.class_token() || v.pool() != "cls")
    throw ConfigError("model", "pool",
                      "ibot distils the class token: it needs class_token: true and pool: cls");
  register_module("student", student_);
  register_module("teacher", teacher_);
  const int64_t patch_out = options_.shared_head() ? 0 : options_.patch_out_dim();
  student_head_ = register_module("student_head", DinoHead(v.dim(), options_.dino(), patch_out));
  teacher_head_ = register_module("teacher_head", DinoHead(v.dim(), options_.dino(), patch_out));
  // iBOT's masked_embed (zeros there; small random here, as SimMIM's token).
  mask_token_ = register_parameter("mask_token", torch::randn({1, 1, v.dim()}) * 0.02);
  center_ = register_buffer("center", torch::zeros({1, options_.dino().out_dim()}));
  patch_center_ = register_buffer("patch_center", torch::zeros({1, 1, options_.patch_out_dim()}));
  mask_draws_ = StepDraws(*this, "mask_seed");
  momentum_pairs_.add(*student_, *teacher_);
  momentum_pairs_.add(*student_head_, *teacher_head_);
}

void IbotImpl::sync_encoder_copies() { copy_weights(*teacher_, *student_); }

torch::Tensor IbotImpl::masks(int64_t batch, int64_t grid, at::Generator generator) const {
  // Every image of the global batch in turn, crop by crop, from one generator; then this
  // rank's rows.
  const auto& slice = batch_slice();
  const int64_t rows = slice.global_rows(batch);
  std::vector<torch::Tensor> all;
  for (int64_t crop = 0; crop < 2; ++crop)
    for (int64_t image = 0; image < rows; ++image) {
      const bool masked = uniform(generator, 0, 1) < options_.masked_images();
      const double ratio = uniform(generator, options_.mask_ratio() - options_.mask_ratio_var(),
                                   options_.mask_ratio() + options_.mask_ratio_var());
      // The iBOT loader's least block: (grid / 3)^2 patches.
      all.push_back(masked ? block_mask(grid, ratio * static_cast<double>(grid * grid),
                                        std::pow(static_cast<double>(grid / 3), 2),
                                        options_.mask_aspect_ratio(), generator)
                           : torch::zeros({grid * grid}));
    }
  return torch::stack(all).view({2, rows, grid * grid}).narrow(1, slice.offset, batch);
}

std::pair<torch::Tensor, torch::Tensor> IbotImpl::tokens(ViTImpl& vit, const torch::Tensor& images,
                                                         const torch::Tensor& mask) {
  const auto x = vit.final_tokens(images, mask, mask_token_);
  return {x.select(1, 0), x.slice(1, 1)};
}

torch::Tensor IbotImpl::patch_loss(const torch::Tensor& student, const torch::Tensor& targets,
                                   const torch::Tensor& mask, double student_temp) {
  const auto cross_entropy =
      (-targets.detach() * F::log_softmax(student / student_temp, F::LogSoftmaxFuncOptions(-1)))
          .sum(-1);  // [2B, N]
  const auto per_image = (cross_entropy * mask).sum(-1) / mask.sum(-1).clamp_min(1.0);
  return per_image.mean();
}

StepOutput IbotImpl::step(const std::vector<torch::Tensor>& views) {
  const int64_t count = static_cast<int64_t>(views.size());
  TORCH_CHECK(count == view_count(), "iBOT takes ", view_count(), " views, got ", count);
  const auto& dino = options_.dino();
  const int64_t batch = views[0].size(0), step = mask_draws_.step();
  const int64_t grid = views[0].size(2) / student_->options().patch_size();
  const auto globals = torch::cat({views[0], views[1]});
  const auto mask = to_device(masks(batch, grid, mask_draws_.generator()), globals.device())
                        .to(globals.scalar_type())
                        .view({2 * batch, grid * grid});
  // Student: masked global crops (class and patch tokens), local crops (class token).
  const auto [student_cls, student_patches] = tokens(*student_, globals, mask);
  std::vector<torch::Tensor> student_features = {student_cls};
  if (count > 2)
    student_features.push_back(
        student_->forward(torch::cat(std::vector<torch::Tensor>(views.begin() + 2, views.end()))));
  const bool freeze_last = step < dino.freeze_last_layer_steps();
  const auto student_cls_logits = student_head_->forward(torch::cat(student_features), freeze_last);
  const auto student_patch_logits = student_head_->forward_patches(student_patches, freeze_last);
  torch::Tensor teacher_cls_logits, teacher_patch_logits;
  {
    torch::NoGradGuard no_grad;
    const auto [cls, patches] = tokens(*teacher_, globals, {});
    teacher_cls_logits = teacher_head_->forward(cls);
    teacher_patch_logits = teacher_head_->forward_patches(patches);
  }
  const double temperature = teacher_temperature(dino, step);
  const double patch_temperature =
      warmed_up(options_.warmup_teacher_patch_temp(), options_.teacher_patch_temp(),
                dino.warmup_teacher_steps(), step);
  const bool sinkhorn = dino.centering() == "sinkhorn_knopp";
  torch::Tensor cls_targets, patch_targets;
  if (sinkhorn) {
    cls_targets = sinkhorn_knopp_targets(teacher_cls_logits, temperature,
                                         dino.sinkhorn_iterations(), group());
    // Over the masked patches of the global batch only (DINOv2's iBOT loss); the others are
    // not scored.
    const auto flat = teacher_patch_logits.flatten(0, 1);
    const auto hidden = mask.flatten().nonzero().squeeze(1);
    patch_targets = torch::zeros_like(flat).index_copy_(
        0, hidden,
        sinkhorn_knopp_targets(flat.index_select(0, hidden), patch_temperature,
                               dino.sinkhorn_iterations(), group()));
    patch_targets = patch_targets.view_as(teacher_patch_logits);
  } else {
    cls_targets = centred_targets(teacher_cls_logits, center_, temperature).detach();
    patch_targets =
        centred_targets(teacher_patch_logits, patch_center_, patch_temperature).detach();
  }
  StepOutput out;
  const auto cls_loss = dino_loss(student_cls_logits, cls_targets, dino.student_temp(), count, 2);
  const auto masked_loss =
      patch_loss(student_patch_logits, patch_targets, mask, dino.student_temp());
  out.loss = options_.cls_weight() * cls_loss + options_.patch_weight() * masked_loss;
  out.logs["cls_loss"] = cls_loss.detach();
  out.logs["patch_loss"] = masked_loss.detach();
  if (dino.koleo_weight() > 0) {
    const auto koleo = koleo_over_crops(student_cls, 2, group());
    out.logs["koleo"] = koleo.detach();
    out.loss = out.loss + dino.koleo_weight() * koleo;
  }
  torch::NoGradGuard no_grad;
  const auto mean_probabilities = global_mean(cls_targets);
  out.logs["teacher_mean_entropy"] =
      (-(mean_probabilities * mean_probabilities.clamp_min(1e-12).log()).sum());
  out.logs["masked_fraction"] = mask.mean();
  if (!sinkhorn) {
    // Both centres follow the global batch's mean teacher outputs (the patch centre over every
    // patch, masked or not, as the reference).
    center_.mul_(dino.center_momentum())
        .add_(global_mean(teacher_cls_logits).unsqueeze(0) * (1 - dino.center_momentum()));
    patch_center_.mul_(options_.patch_center_momentum())
        .add_(global_mean(teacher_patch_logits.mean(1)).view({1, 1, -1}) *
              (1 - options_.patch_center_momentum()));
  }
  return out;
}

void IbotImpl::after_optimizer_step(int64_t step, int64_t total_steps) {
  mask_draws_.set_step(step);
  momentum_pairs_.update(cosine_momentum(options_.dino().momentum_teacher(), step, total_steps));
}

}  // namespace pretext::methods
