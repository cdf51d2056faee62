#include "methods/vqvae.h"

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/nn/functional.h>

#include "base/errors.h"
#include "methods/mae.h"

namespace pretext::methods {
namespace F = torch::nn::functional;

void VqVaeOptions::visit_fields(FieldVisitor& visit) {
  visit("codebook_size", codebook_size_, Check::between(2, 1 << 20));
  visit("code_dim", code_dim_, Check::between(2, 4096));
  visit("commitment", commitment_, Check::at_least(0));
  visit("decoder_dim", decoder_dim_, Check::between(4, 16384));
  visit("decoder_depth", decoder_depth_, Check::between(1, 64));
  visit("decoder_heads", decoder_heads_, Check::between(1, 256));
  visit("restart_below", restart_below_, Check::between(0, 1));
  visit("usage_decay", usage_decay_, Check::from_below(0, 1));
}

std::optional<std::pair<std::string, std::string>> VqVaeOptions::mismatch(
    const std::string& backbone) const {
  if (backbone != "vit") return {{"name", "vqvae needs the vit backbone, not " + backbone}};
  if (decoder_dim_ % decoder_heads_ != 0 || decoder_dim_ % 4 != 0)
    return {{"decoder_dim", std::to_string(decoder_dim_) +
                                " must be a multiple of 4 and of decoder_heads " +
                                std::to_string(decoder_heads_)}};
  return std::nullopt;
}

VqVaeImpl::VqVaeImpl(std::shared_ptr<BackboneImpl> backbone, const VqVaeOptions& options)
    : vit_(std::dynamic_pointer_cast<ViTImpl>(backbone)), options_(options) {
  if (!vit_) throw ConfigError("method", "name", "vqvae needs the vit backbone");
  if (const auto bad = options_.mismatch("vit"))
    throw ConfigError("method", bad->first, bad->second);
  const auto& v = vit_->options();
  if (v.groups().size() > 1)
    throw ConfigError("model", "band_groups",
                      "vqvae gives every patch one token; band groups give several per patch");
  register_module("backbone", vit_);
  quant_proj_ = register_module("quant_proj", torch::nn::Linear(v.dim(), options_.code_dim()));
  codebook_ =
      register_parameter("codebook", torch::randn({options_.codebook_size(), options_.code_dim()}));
  const int64_t width = options_.decoder_dim();
  decoder_embed_ = register_module("decoder_embed", torch::nn::Linear(options_.code_dim(), width));
  decoder_pos_embed_ = register_parameter("decoder_pos_embed",
                                          sincos_position_embedding(width, v.grid()).unsqueeze(0),
                                          /*requires_grad=*/false);
  decoder_blocks_ = register_blocks(*this, "decoder_blocks", options_.decoder_depth(), width,
                                    options_.decoder_heads(), 4 * width);
  decoder_norm_ = register_module(
      "decoder_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-6)));
  decoder_pred_ = register_module(
      "decoder_pred", torch::nn::Linear(width, v.patch_size() * v.patch_size() * v.in_channels()));
  usage_ = register_buffer(
      "usage",
      torch::full({options_.codebook_size()}, 1.0 / static_cast<double>(options_.codebook_size())));
  restart_draws_ = StepDraws(*this, "restart_seed");
}

torch::Tensor VqVaeImpl::latents(const torch::Tensor& images) {
  const auto tokens = vit_->final_tokens(images).slice(1, vit_->prefix_count());
  return F::normalize(quant_proj_(tokens), F::NormalizeFuncOptions().dim(-1));
}

torch::Tensor VqVaeImpl::codebook() const {
  return F::normalize(codebook_, F::NormalizeFuncOptions().dim(-1));
}

torch::Tensor VqVaeImpl::nearest(const torch::Tensor& latents, const torch::Tensor& codebook) {
  // In float32 even under autocast: cosines near 1 rounded to bf16's 8 bits pick another entry
  // for about 3% of latents.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  return torch::matmul(latents.to(torch::kFloat32), codebook.to(torch::kFloat32).t()).argmax(-1);
}

torch::Tensor VqVaeImpl::codes(const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  return nearest(latents(images), codebook());
}

torch::Tensor VqVaeImpl::decode(const torch::Tensor& quantised) {
  auto x = decoder_embed_(quantised) + decoder_pos_embed_;
  for (auto& block : decoder_blocks_) x = block->forward(x);
  return decoder_pred_(decoder_norm_(x));
}

StepOutput VqVaeImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(!views.empty(), "vqvae takes 1 view, got none");
  const auto& images = views[0];
  const auto z = latents(images);
  const auto entries = codebook();
  const auto indices = nearest(z.detach(), entries.detach());
  const auto quantised = entries.index_select(0, indices.flatten()).view_as(z);
  // The codebook moves towards the latents, the latents commit to their entries, and the
  // decoder's gradient passes the quantiser unchanged (straight-through).
  const auto codebook_term = F::mse_loss(quantised, z.detach());
  const auto commitment_term = F::mse_loss(z, quantised.detach());
  const auto reconstruction = F::mse_loss(decode(z + (quantised - z).detach()),
                                          patchify(images, vit_->options().patch_size()));
  StepOutput out;
  out.loss = reconstruction + codebook_term + options_.commitment() * commitment_term;
  out.logs["reconstruction"] = reconstruction.detach();
  out.logs["commitment"] = commitment_term.detach();
  // How evenly the global batch's patches use the codebook: the perplexity of the entries'
  // frequencies (codebook_size when all are used alike, 1 when one takes every patch).
  torch::NoGradGuard no_grad;
  const auto counts =
      torch::bincount(indices.flatten(), {}, options_.codebook_size()).to(torch::kFloat64);
  const auto frequencies = global_mean(counts.unsqueeze(0));
  const auto p = frequencies / frequencies.sum();
  out.logs["perplexity"] = (-(p * p.clamp_min(1e-12).log()).sum()).exp();
  out.logs["codes_used"] = frequencies.gt(0).sum().to(torch::kFloat32);
  const double decay = options_.usage_decay();
  usage_.mul_(decay).add_(p.to(usage_.scalar_type()) * (1 - decay));
  if (options_.restart_below() > 0) {
    // A candidate for every entry, drawn from the global batch's latents (the same on every
    // rank), taken by those below the threshold; no host-device synchronisation.
    const auto all = gathered(z.flatten(0, 1));
    const int64_t size = options_.codebook_size();
    const auto picks =
        (uniform_rows(restart_draws_.generator(), {}, size) * static_cast<double>(all.size(0)))
            .to(torch::kLong)
            .clamp_max(all.size(0) - 1);
    restart_values_ = all.index_select(0, picks.to(all.device()));
    restart_ = usage_.lt(options_.restart_below() / static_cast<double>(size));
  }
  return out;
}

void VqVaeImpl::after_optimizer_step(int64_t step, int64_t /*total_steps*/) {
  restart_draws_.set_step(step);
  if (!restart_.defined()) return;
  torch::NoGradGuard no_grad;
  const auto restart = restart_.unsqueeze(1);
  codebook_.copy_(torch::where(restart, restart_values_.to(codebook_.scalar_type()), codebook_));
  usage_.masked_fill_(restart_, 1.0 / static_cast<double>(options_.codebook_size()));
  restart_ = restart_values_ = torch::Tensor();
}

}  // namespace pretext::methods
