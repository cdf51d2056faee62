#include "methods/mae.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/modules/container/modulelist.h>

#include "base/device.h"
#include "base/errors.h"

namespace pretext::methods {

void MaeOptions::visit_fields(FieldVisitor& visit) {
  visit("mask_ratio", mask_ratio_, Check::between(0.0, 0.99));
  visit("decoder_dim", decoder_dim_, Check::between(4, 16384));
  visit("decoder_depth", decoder_depth_, Check::between(1, 64));
  visit("decoder_heads", decoder_heads_, Check::between(1, 256));
  visit("norm_pix_loss", norm_pix_loss_);
  visit("masking", masking_, Check::one_of({"independent", "consistent"}));
  visit("temporal_encoding", temporal_encoding_);
}

std::optional<std::pair<std::string, std::string>> MaeOptions::mismatch(
    const std::string& backbone) const {
  const auto n = [](int64_t v) { return std::to_string(v); };
  if (backbone != "vit") return {{"name", "mae needs the vit backbone, not " + backbone}};
  if (decoder_dim_ % decoder_heads_ != 0 || decoder_dim_ % 4 != 0)
    return {{"decoder_dim", n(decoder_dim_) + " must be a multiple of 4 and of decoder_heads " +
                                n(decoder_heads_)}};
  return std::nullopt;
}

Masking random_masking(const torch::Tensor& tokens, double ratio, at::Generator generator,
                       int64_t sequences, bool consistent, const BatchSlice& slice) {
  const int64_t batch = tokens.size(0), count = tokens.size(1), dim = tokens.size(2);
  const auto noise = [&](int64_t columns) {
    return uniform_rows(generator, slice, batch, {columns});
  };
  TORCH_CHECK(sequences >= 1 && count % sequences == 0, count, " tokens do not make ", sequences,
              " sequences");
  const auto kept = [&](int64_t n) {
    return std::max<int64_t>(1, std::llround(static_cast<double>(n) * (1.0 - ratio)));
  };
  torch::Tensor ids_shuffle;  // [B, count]: kept tokens first
  int64_t keep = 0;
  if (!consistent || sequences == 1) {
    ids_shuffle = noise(count).argsort(/*dim=*/1, /*descending=*/false);
    keep = kept(count);
  } else {
    // Positions shuffled once per row, then every sequence's token at each position in turn:
    // exact even where the noise of two positions ties.
    const int64_t positions = count / sequences, per_sequence = kept(positions);
    const auto order = noise(positions).argsort(1, false);
    const auto offsets = torch::arange(sequences, torch::kInt64).mul(positions).view({1, -1, 1});
    const auto spread = [&](const torch::Tensor& ids) {
      return (ids.unsqueeze(1) + offsets).reshape({batch, -1});
    };
    ids_shuffle = torch::cat(
        {spread(order.slice(1, 0, per_sequence)), spread(order.slice(1, per_sequence))}, 1);
    keep = per_sequence * sequences;
  }
  ids_shuffle = to_device(ids_shuffle, tokens.device());
  Masking m;
  m.ids_restore = ids_shuffle.argsort(/*dim=*/1, /*descending=*/false);
  m.ids_keep = ids_shuffle.slice(1, 0, keep);
  m.visible = tokens.gather(1, m.ids_keep.unsqueeze(-1).expand({-1, -1, dim}));
  auto mask = torch::ones({batch, count}, tokens.options());
  mask.slice(1, 0, keep).zero_();
  m.mask = mask.gather(1, m.ids_restore);
  return m;
}

torch::Tensor acquisition_encoding(const torch::Tensor& days, int64_t dim) {
  const double year = 365.2425;  // days, the Gregorian mean
  const auto d = days.to(torch::kFloat64);
  const auto years = d / year;
  return torch::cat(
      {sincos_encoding(years, dim / 2), sincos_encoding(d - years.floor() * year, dim / 2)}, -1);
}

torch::Tensor patchify(const torch::Tensor& images, int64_t patch) {
  const int64_t b = images.size(0), c = images.size(1);
  const int64_t h = images.size(2) / patch, w = images.size(3) / patch;
  return images.reshape({b, c, h, patch, w, patch})
      .permute({0, 2, 4, 3, 5, 1})  // b, h, w, p (row), q (column), c
      .reshape({b, h * w, patch * patch * c});
}

torch::Tensor unpatchify(const torch::Tensor& patches, int64_t patch, int64_t channels) {
  const int64_t b = patches.size(0);
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(patches.size(1))));
  return patches.reshape({b, grid, grid, patch, patch, channels})
      .permute({0, 5, 1, 3, 2, 4})
      .reshape({b, channels, grid * patch, grid * patch});
}

torch::Tensor masked_patch_loss(const torch::Tensor& prediction, const torch::Tensor& target,
                                const torch::Tensor& mask) {
  const auto per_patch = (prediction - target).pow(2).mean(-1);
  return (per_patch * mask).sum() / mask.sum().clamp_min(1);
}

MaeImpl::MaeImpl(std::shared_ptr<BackboneImpl> backbone, const MaeOptions& options)
    : vit_(std::dynamic_pointer_cast<ViTImpl>(backbone)), options_(options) {
  if (!vit_) throw ConfigError("method", "name", "mae needs the vit backbone");
  if (const auto bad = options_.mismatch("vit"))
    throw ConfigError("method", bad->first, bad->second);
  register_module("backbone", vit_);
  const auto& v = vit_->options();
  if (options_.temporal_encoding() && v.dim() % 4 != 0)
    throw ConfigError(
        "model", "dim",
        std::to_string(v.dim()) + " is not a multiple of 4, as the temporal encoding needs");
  groups_ = v.groups();
  const int64_t width = options_.decoder_dim(), prefix = vit_->prefix_count();
  decoder_embed_ = register_module("decoder_embed", torch::nn::Linear(v.dim(), width));
  mask_token_ = register_parameter("mask_token", torch::randn({1, 1, width}) * 0.02);
  auto fixed = torch::zeros({1, prefix + v.grid() * v.grid(), width});
  fixed.slice(1, prefix).copy_(sincos_position_embedding(width, v.grid()).unsqueeze(0));
  decoder_pos_embed_ = register_parameter("decoder_pos_embed", fixed, /*requires_grad=*/false);
  decoder_blocks_ = register_blocks(*this, "decoder_blocks", options_.decoder_depth(), width,
                                    options_.decoder_heads(), 4 * width);
  decoder_norm_ = register_module(
      "decoder_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-6)));
  const int64_t pixels = v.patch_size() * v.patch_size();
  if (groups_.size() == 1) {
    decoder_pred_.push_back(
        register_module("decoder_pred", torch::nn::Linear(width, pixels * groups_[0])));
  } else {
    auto heads = register_module("decoder_pred", torch::nn::ModuleList());
    for (const auto size : groups_) {
      decoder_pred_.push_back(torch::nn::Linear(width, pixels * size));
      heads->push_back(decoder_pred_.back());
    }
    decoder_group_embed_ = register_parameter(
        "decoder_group_embed",
        sincos_encoding(torch::arange(static_cast<int64_t>(groups_.size())), width)
            .view({1, 1, -1, 1, width}),
        /*requires_grad=*/false);
  }
  mask_draws_ = StepDraws(*this, "mask_seed");
}

torch::Tensor MaeImpl::date_encoding(const torch::Tensor& acquired_at, int64_t frames,
                                     int64_t dim) const {
  if (!options_.temporal_encoding() || !acquired_at.defined()) return {};
  TORCH_CHECK(acquired_at.dim() == 2 && acquired_at.size(1) == frames, "dates ",
              acquired_at.sizes(), " for ", frames, " frames");
  return to_device(acquisition_encoding(acquired_at, dim), decoder_pos_embed_.device())
      .view({acquired_at.size(0), frames, 1, 1, dim});
}

std::pair<std::vector<torch::Tensor>, Masking> MaeImpl::reconstruct(
    const torch::Tensor& stack, const torch::Tensor& acquired_at, at::Generator generator) {
  const int64_t batch = stack.size(0), prefix = vit_->prefix_count();
  const int64_t bands = vit_->options().in_channels(), frames = stack.size(1) / bands;
  const auto groups = static_cast<int64_t>(groups_.size());
  TORCH_CHECK(frames >= 1 && stack.size(1) % bands == 0, "a stack of ", stack.size(1),
              " bands is not made of frames of ", bands);
  // Tokens [B, frames x groups x N, dim]: each frame's patch tokens and its date.
  std::vector<torch::Tensor> per_frame;
  const auto when = date_encoding(acquired_at, frames, vit_->options().dim());
  for (int64_t t = 0; t < frames; ++t) {
    auto tokens = vit_->patch_tokens(stack.narrow(1, t * bands, bands));
    per_frame.push_back(when.defined() ? tokens + when.select(1, t).select(1, 0) : tokens);
  }
  const auto patches = torch::cat(per_frame, 1);
  const int64_t positions = patches.size(1) / (frames * groups);
  auto masking = random_masking(patches, options_.mask_ratio(), std::move(generator),
                                frames * groups, options_.masking() == "consistent", batch_slice());
  auto x = vit_->final_norm(
      vit_->run_blocks(torch::cat({vit_->prefix_tokens(batch), masking.visible}, 1)));
  x = decoder_embed_(x);
  const int64_t width = x.size(2), hidden = patches.size(1) - masking.visible.size(1);
  auto body = torch::cat({x.slice(1, prefix), mask_token_.expand({batch, hidden, width})}, 1);
  body = body.gather(1, masking.ids_restore.unsqueeze(-1).expand({-1, -1, width}));
  // Every token's decoder encoding: its position, group and date, [B or 1, T, G, N, width].
  auto encoding = decoder_pos_embed_.slice(1, prefix).view({1, 1, 1, positions, width});
  if (decoder_group_embed_.defined()) encoding = encoding + decoder_group_embed_;
  if (const auto dates = date_encoding(acquired_at, frames, width); dates.defined())
    encoding = encoding + dates;
  body = body.view({batch, frames, groups, positions, width}) + encoding;
  x = torch::cat({x.slice(1, 0, prefix) + decoder_pos_embed_.slice(1, 0, prefix),
                  body.view({batch, -1, width})},
                 1);
  for (auto& block : decoder_blocks_) x = block->forward(x);
  const auto out =
      decoder_norm_(x).slice(1, prefix).view({batch, frames, groups, positions, width});
  std::vector<torch::Tensor> predictions;
  for (int64_t g = 0; g < groups; ++g)
    predictions.push_back(decoder_pred_[g](out.select(2, g).reshape({batch, -1, width})));
  return {std::move(predictions), std::move(masking)};
}

torch::Tensor MaeImpl::group_patches(const torch::Tensor& stack, int64_t group) const {
  const int64_t bands = vit_->options().in_channels();
  int64_t first = 0;
  for (int64_t g = 0; g < group; ++g) first += groups_[g];
  std::vector<torch::Tensor> frames;
  for (int64_t t = 0; t * bands < stack.size(1); ++t)
    frames.push_back(
        patchify(stack.narrow(1, t * bands + first, groups_[group]), vit_->options().patch_size()));
  return torch::cat(frames, 1);
}

StepOutput MaeImpl::step(const std::vector<torch::Tensor>& views) { return step_dated(views, {}); }

StepOutput MaeImpl::step_dated(const std::vector<torch::Tensor>& views,
                               const torch::Tensor& acquired_at) {
  TORCH_CHECK(!views.empty(), "MAE takes 1 view, got none");
  const auto stack = views[0].contiguous();
  const auto [predictions, masking] = reconstruct(stack, acquired_at, mask_draws_.generator());
  return loss(stack, predictions, masking);
}

StepOutput MaeImpl::loss(const torch::Tensor& stack, const std::vector<torch::Tensor>& predictions,
                         const Masking& masking) const {
  const auto groups = static_cast<int64_t>(groups_.size());
  const int64_t bands = vit_->options().in_channels(), patch = vit_->options().patch_size();
  const int64_t batch = stack.size(0), frames = stack.size(1) / bands;
  // [B, T, G, N], to take each group's [B, T x N] in the order of its predictions.
  const auto mask = masking.mask.view({batch, frames, groups, -1});
  // norm_pix_loss: each patch normalised over the pixels of all its bands, as SatMAE's
  // forward_loss does, so the target keeps the ratios between groups (visible, NIR, SWIR).
  torch::Tensor mean, scale;  // [B, T x N, 1]
  if (options_.norm_pix_loss()) {
    std::vector<torch::Tensor> whole;
    for (int64_t t = 0; t < frames; ++t)
      whole.push_back(patchify(stack.narrow(1, t * bands, bands), patch));
    const auto patches = torch::cat(whole, 1);
    mean = patches.mean(-1, true);
    scale = (patches.var(-1, /*unbiased=*/true, /*keepdim=*/true) + 1e-6).sqrt();
  }
  // Every masked token of every group weighs the same: the sum over groups of their masked
  // losses over the number of masked tokens (the reference's total_loss / num_removed).
  StepOutput out;
  auto total = torch::zeros({}, stack.options());
  auto masked = torch::zeros({}, stack.options());
  for (int64_t g = 0; g < groups; ++g) {
    auto target = group_patches(stack, g);
    if (mean.defined()) target = (target - mean) / scale;
    const auto group_mask = mask.select(2, g).reshape({batch, -1});
    const auto loss = masked_patch_loss(predictions[g], target, group_mask);
    if (groups > 1) out.logs["loss_group_" + std::to_string(g)] = loss.detach();
    const auto count = group_mask.sum();
    total = total + loss * count;
    masked = masked + count;
  }
  out.loss = total / masked.clamp_min(1);
  return out;
}

void MaeImpl::after_optimizer_step(int64_t step, int64_t /*total_steps*/) {
  mask_draws_.set_step(step);
}

}  // namespace pretext::methods
