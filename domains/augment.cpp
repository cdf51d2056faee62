#include "domains/augment.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/device.h"
#include "domains/sampler.h"

namespace pretext::domains {
namespace F = torch::nn::functional;

void AugmentOptions::visit_fields(FieldVisitor& visit) {
  visit("size", size_, Check::at_least(4));
  visit("crop_scale_min", crop_scale_min_, Check::between(0.01, 1));
  visit("crop_scale_max", crop_scale_max_, Check::between(0.01, 1));
  visit("crop_ratio_min", crop_ratio_min_, Check::between(0.1, 10));
  visit("crop_ratio_max", crop_ratio_max_, Check::between(0.1, 10));
  visit("hflip_p", hflip_p_, Check::between(0, 1));
  visit("vflip_p", vflip_p_, Check::between(0, 1));
  visit("rotate90_p", rotate90_p_, Check::between(0, 1));
  visit("jitter_p", jitter_p_, Check::between(0, 1));
  visit("brightness", brightness_, Check::from_below(0, 1));
  visit("contrast", contrast_, Check::from_below(0, 1));
  visit("gamma", gamma_, Check::from_below(0, 1));
  visit("blur_p", blur_p_, Check::between(0, 1));
  visit("blur_sigma_min", blur_sigma_min_, Check::above(0));
  visit("blur_sigma_max", blur_sigma_max_, Check::above(0));
  visit("hed_p", hed_p_, Check::between(0, 1));
  visit("hed_scale", hed_scale_, Check::from_below(0, 1));
  visit("hed_shift", hed_shift_, Check::between(0, 1));
  visit("window", window_);
  visit("window_levels", window_levels_, Check::any().non_empty());
  visit("window_widths", window_widths_, Check::above(0).non_empty());
  visit("window_percentiles", window_percentiles_, Check::between(0, 100));
  visit("window_level_jitter", window_level_jitter_, Check::between(0, 1));
  visit("window_width_jitter", window_width_jitter_, Check::from_below(0, 1));
  visit("bias_field_p", bias_field_p_, Check::between(0, 1));
  visit("bias_field_strength", bias_field_strength_, Check::between(0, 2));
  visit("noise_p", noise_p_, Check::between(0, 1));
  visit("noise_std", noise_std_, Check::at_least(0));
  visit("band_jitter_p", band_jitter_p_, Check::between(0, 1));
  visit("band_scale", band_scale_, Check::from_below(0, 1));
  visit("band_shift", band_shift_, Check::at_least(0));
  visit("band_dropout_p", band_dropout_p_, Check::from_below(0, 1));
  visit("local_size", local_size_, Check::at_least(4));
  visit("local_crop_scale_min", local_crop_scale_min_, Check::between(0.01, 1));
  visit("local_crop_scale_max", local_crop_scale_max_, Check::between(0.01, 1));
  visit("mean", mean_, Check::any().non_empty());
  visit("std", std_, Check::above(0).non_empty());
}

namespace {

torch::Tensor uniform(int64_t n, double low, double high, at::Generator& generator) {
  return torch::rand({n}, generator, torch::kFloat64) * (high - low) + low;
}

torch::Tensor bernoulli(int64_t n, double p, at::Generator& generator) {
  return (torch::rand({n}, generator, torch::kFloat64) < p).to(torch::kFloat64);
}

// Factors in [1 - spread, 1 + spread] where `on`, 1 elsewhere.
torch::Tensor factor_or_one(const torch::Tensor& on, double spread, at::Generator& generator) {
  const auto factor = uniform(on.size(0), 1.0 - spread, 1.0 + spread, generator);
  return torch::where(on > 0, factor, torch::ones_like(factor));
}

// Constants in the dtype and on the device of `options`.
torch::Tensor constant(const torch::Tensor& host, const torch::TensorOptions& options) {
  return to_device(host, options.device()).to(options.dtype());
}

torch::Tensor per_band(const std::vector<double>& values, int64_t channels,
                       const torch::Tensor& like) {
  // One value per band; a temporal stack (frames x bands) repeats them for every frame.
  const auto count = static_cast<int64_t>(values.size());
  TORCH_CHECK(count > 0 && channels % count == 0, "normalisation has ", count, " values for ",
              channels, " bands");
  const auto t = constant(torch::tensor(values, torch::kFloat64), like.options());
  return t.repeat({channels / count}).view({1, channels, 1, 1});
}

// Every tensor of the parameters, for packing.
std::vector<torch::Tensor*> tensors_of(AugmentParams& p) {
  return {&p.crop_x,     &p.crop_y,        &p.crop_width,   &p.crop_height,  &p.hflip,
          &p.vflip,      &p.quarter_turns, &p.brightness,   &p.contrast,     &p.gamma,
          &p.blur_sigma, &p.window_preset, &p.window_shift, &p.window_scale, &p.bias,
          &p.noise_std,  &p.hed_scale,     &p.hed_shift,    &p.band_scale,   &p.band_shift,
          &p.band_keep};
}

bool any_differs(const torch::Tensor& values, double neutral) {
  return values.defined() && (values != neutral).any().item<bool>();
}

constexpr int64_t kLow32 = 0xffffffff;

// 32-bit integer hash (Mueller's, a bijection of [0, 2^32)) in int64 arithmetic: products stay
// below 2^59, so nothing overflows and every device computes the same bits.
torch::Tensor hash32(torch::Tensor h) {
  constexpr int64_t kMultiplier = 0x45d9f3b;
  h = (h.__rshift__(16).bitwise_xor(h) * kMultiplier).bitwise_and(kLow32);
  h = (h.__rshift__(16).bitwise_xor(h) * kMultiplier).bitwise_and(kLow32);
  return h.__rshift__(16).bitwise_xor(h);
}

}  // namespace

Augment::Augment(AugmentOptions options) : options_(std::move(options)) {}

AugmentParams AugmentParams::to(const c10::Device& device) const {
  // Packed on the CPU too (a few small copies), so that every test runs the device path.
  AugmentParams moved = *this;
  std::vector<torch::Tensor*> present;
  std::vector<torch::Tensor> flat;
  std::vector<int64_t> lengths;
  for (auto* t : tensors_of(moved)) {
    if (!t->defined()) continue;
    present.push_back(t);
    flat.push_back(t->to(torch::kFloat64).flatten());  // preset indices are exact in float64
    lengths.push_back(flat.back().numel());
  }
  const auto parts = to_device(torch::cat(flat), device).split_with_sizes(lengths);
  for (size_t i = 0; i < present.size(); ++i)
    *present[i] = parts[i].view(present[i]->sizes()).to(present[i]->scalar_type());
  return moved;
}

AugmentParams AugmentParams::rows(int64_t offset, int64_t count) const {
  AugmentParams part = *this;
  for (auto* t : tensors_of(part))
    if (t->defined()) *t = t->narrow(0, offset, count);
  part.first_row = first_row + offset;
  return part;
}

AugmentParams Augment::sample(int64_t batch_size, int64_t height, int64_t width,
                              at::Generator& generator, int64_t channels) const {
  const auto& o = options_;
  const int64_t n = batch_size;
  AugmentParams p;
  // Random resized crop in pixels, as torchvision draws it, clamped to the image.
  const double area = static_cast<double>(height * width);
  const auto scale = uniform(n, o.crop_scale_min(), o.crop_scale_max(), generator);
  const auto ratio =
      uniform(n, std::log(o.crop_ratio_min()), std::log(o.crop_ratio_max()), generator).exp();
  const auto crop_w = (scale * area * ratio).sqrt().clamp_max(width);
  const auto crop_h = (scale * area / ratio).sqrt().clamp_max(height);
  const auto left = torch::rand({n}, generator, torch::kFloat64) * (width - crop_w);
  const auto top = torch::rand({n}, generator, torch::kFloat64) * (height - crop_h);
  p.crop_x = (left + crop_w / 2) / width * 2 - 1;
  p.crop_y = (top + crop_h / 2) / height * 2 - 1;
  p.crop_width = crop_w / width;
  p.crop_height = crop_h / height;
  p.hflip = bernoulli(n, o.hflip_p(), generator);
  p.vflip = bernoulli(n, o.vflip_p(), generator);
  const auto turn = bernoulli(n, o.rotate90_p(), generator);
  p.quarter_turns =
      turn * (torch::randint(1, 4, {n}, generator, torch::kInt64).to(torch::kFloat64));
  const auto jitter_on = bernoulli(n, o.jitter_p(), generator);
  p.brightness = factor_or_one(jitter_on, o.brightness(), generator);
  p.contrast = factor_or_one(jitter_on, o.contrast(), generator);
  p.gamma = factor_or_one(jitter_on, o.gamma(), generator);
  const auto blur_on = bernoulli(n, o.blur_p(), generator);
  p.blur_sigma = blur_on * uniform(n, o.blur_sigma_min(), o.blur_sigma_max(), generator);
  // Radiology draws come after the shared ones, so that adding them left earlier views as they
  // were.
  const auto presets = static_cast<int64_t>(o.window_levels().size());
  p.window_preset = torch::randint(0, std::max<int64_t>(presets, 1), {n}, generator, torch::kInt64);
  p.window_shift = uniform(n, -o.window_level_jitter(), o.window_level_jitter(), generator);
  p.window_scale = uniform(n, 1 - o.window_width_jitter(), 1 + o.window_width_jitter(), generator);
  const auto bias_on = bernoulli(n, o.bias_field_p(), generator);
  p.bias = bias_on.view({n, 1}) * (torch::rand({n, 5}, generator, torch::kFloat64) * 2 - 1) *
           o.bias_field_strength();
  p.noise_std = bernoulli(n, o.noise_p(), generator) * o.noise_std();
  p.noise_seed = static_cast<uint64_t>(
      torch::randint(0, int64_t{1} << 62, {1}, generator, torch::kInt64).item<int64_t>());
  const auto hed_on = bernoulli(n, o.hed_p(), generator).view({n, 1});
  p.hed_scale =
      1 + hed_on * (torch::rand({n, 3}, generator, torch::kFloat64) * 2 - 1) * o.hed_scale();
  p.hed_shift = hed_on * (torch::rand({n, 3}, generator, torch::kFloat64) * 2 - 1) * o.hed_shift();
  const int64_t c = channels;
  const auto band_on = bernoulli(n, o.band_jitter_p(), generator).view({n, 1});
  p.band_scale =
      1 + band_on * (torch::rand({n, c}, generator, torch::kFloat64) * 2 - 1) * o.band_scale();
  p.band_shift =
      band_on * (torch::rand({n, c}, generator, torch::kFloat64) * 2 - 1) * o.band_shift();
  // Dropped where the draw is under p; the band with the largest draw is always kept.
  const auto draw = torch::rand({n, c}, generator, torch::kFloat64);
  p.band_keep = (draw >= o.band_dropout_p()).to(torch::kFloat64);
  p.band_keep.scatter_(1, draw.argmax(1, true), 1.0);
  return p;
}

torch::Tensor Augment::operator()(const torch::Tensor& batch, at::Generator& generator,
                                  const BatchSlice& slice) const {
  const int64_t rows = batch.size(0);
  const auto params =
      sample(slice.global_rows(rows), batch.size(2), batch.size(3), generator, batch.size(1));
  return apply(batch, slice.global > 0 ? params.rows(slice.offset, rows) : params);
}

torch::Tensor Augment::apply(const torch::Tensor& batch, const AugmentParams& params) const {
  TORCH_CHECK(batch.dim() == 4, "augment expects [B, C, H, W], got ", batch.sizes());
  // Which optional stages any sample takes, read from the parameters where they were drawn (the
  // CPU), so that applying them on the batch's device reads nothing back.
  const bool bias = any_differs(params.bias, 0);
  const bool stained =
      batch.size(1) == 3 && (any_differs(params.hed_scale, 1) || any_differs(params.hed_shift, 0));
  const bool noisy = any_differs(params.noise_std, 0);
  const bool blurred = any_differs(params.blur_sigma, 0);
  const auto p = params.to(batch.device());
  auto x = crop_flip_rotate(batch.to(torch::kFloat32), p);
  if (bias) x = bias_field(x, p);
  x = apply_window(x, options_, p.window_preset, p.window_shift, p.window_scale);
  if (stained) x = stain(x, p);
  x = jitter(x, p);
  x = band_jitter(x, p);
  if (noisy) x = noise(x, p);
  if (blurred) x = blur(x, p);
  x = normalise(x);
  if (p.band_keep.defined() && p.band_keep.size(1) == x.size(1))
    x = x * p.band_keep.to(x.dtype()).view({x.size(0), x.size(1), 1, 1});
  return x;
}

torch::Tensor Augment::band_jitter(const torch::Tensor& x, const AugmentParams& p) const {
  if (!p.band_scale.defined() || p.band_scale.size(1) != x.size(1)) return x;
  const auto shape = std::vector<int64_t>{x.size(0), x.size(1), 1, 1};
  return x * p.band_scale.to(x.dtype()).view(shape) + p.band_shift.to(x.dtype()).view(shape);
}

torch::Tensor Augment::bias_field(const torch::Tensor& x, const AugmentParams& p) const {
  const int64_t height = x.size(2), width = x.size(3);
  const auto options = x.options().dtype(torch::kFloat64);
  const auto v = torch::linspace(-1, 1, height, options).view({height, 1}).expand({height, width});
  const auto u = torch::linspace(-1, 1, width, options).view({1, width}).expand({height, width});
  const auto terms = torch::stack({u, v, u * u, u * v, v * v});            // [5, H, W]
  const auto field = torch::einsum("bt,thw->bhw", {p.bias, terms}).exp();  // [B, H, W]
  return x * field.unsqueeze(1).to(x.dtype());
}

torch::Tensor Augment::stain(const torch::Tensor& x, const AugmentParams& p) const {
  const auto scale = p.hed_scale.to(x.dtype()).view({-1, 3, 1, 1});
  const auto shift = p.hed_shift.to(x.dtype()).view({-1, 3, 1, 1});
  const auto jittered = hed_to_rgb(rgb_to_hed(x) * scale + shift);
  // Samples without stain jitter keep their exact pixels.
  const auto on = (p.hed_scale != 1).any(1) | (p.hed_shift != 0).any(1);
  return torch::where(on.view({-1, 1, 1, 1}), jittered, x);
}

namespace {

// Ruifrok and Johnston's stain vectors (rows: haematoxylin, eosin, DAB), as scikit-image uses.
torch::Tensor rgb_from_hed() {
  return torch::tensor({0.65, 0.70, 0.29, 0.07, 0.99, 0.11, 0.27, 0.57, 0.78}, torch::kFloat64)
      .view({3, 3});
}

constexpr double kLogFloor = -13.815510557964274;  // log(1e-6)

}  // namespace

torch::Tensor rgb_to_hed(const torch::Tensor& rgb) {
  const auto od = rgb.clamp_min(1e-6).log() / kLogFloor;  // [B, 3, H, W], 0 for white
  // Inverted on the CPU: an inverse on a GPU checks its result, a read back.
  const auto hed_from_rgb = constant(torch::inverse(rgb_from_hed()), rgb.options());
  return torch::einsum("bchw,cs->bshw", {od, hed_from_rgb});
}

torch::Tensor hed_to_rgb(const torch::Tensor& hed) {
  const auto od = torch::einsum("bshw,sc->bchw", {hed, constant(rgb_from_hed(), hed.options())});
  return (od * kLogFloor).exp().clamp(0, 1);
}

torch::Tensor Augment::noise(const torch::Tensor& x, const AugmentParams& p) const {
  const auto noise =
      seeded_normal(x.sizes(), p.noise_seed, x.options(), p.first_row * x[0].numel());
  return x + noise * p.noise_std.to(x.dtype()).view({-1, 1, 1, 1});
}

torch::Tensor seeded_normal(at::IntArrayRef sizes, uint64_t seed, const at::TensorOptions& options,
                            int64_t first_position) {
  constexpr double kTwoTo32 = 4294967296.0;
  const auto low = static_cast<int64_t>(seed & kLow32), high = static_cast<int64_t>(seed >> 32);
  int64_t count = 1;
  for (const auto size : sizes) count *= size;
  const auto position =
      torch::arange(first_position, first_position + count, options.dtype(torch::kInt64))
          .bitwise_and(kLow32);
  const auto first = hash32(hash32(position.bitwise_xor(low)).bitwise_xor(high));
  const auto second = hash32(first.bitwise_xor(hash32(position.bitwise_xor(high))));
  const auto u1 = (first.to(torch::kFloat64) + 1) / kTwoTo32;  // (0, 1]: log is finite
  const auto u2 = second.to(torch::kFloat64) / kTwoTo32;
  const auto normal = (-2 * u1.log()).sqrt() * (2 * M_PI * u2).cos();
  return normal.to(options.dtype()).view(sizes);
}

torch::Tensor Augment::crop_flip_rotate(const torch::Tensor& batch, const AugmentParams& p) const {
  // Output coordinate u maps to input c + extent * (A u), A = rotation(k * 90 deg) * flips, in
  // grid_sample's normalised coordinates (align_corners = false).
  const auto k = p.quarter_turns;
  const auto cos = (k == 0).to(torch::kFloat64) - (k == 2).to(torch::kFloat64);
  const auto sin = (k == 1).to(torch::kFloat64) - (k == 3).to(torch::kFloat64);
  const auto fx = 1 - 2 * p.hflip;
  const auto fy = 1 - 2 * p.vflip;
  const auto theta =
      torch::stack(
          {torch::stack({p.crop_width * cos * fx, -p.crop_width * sin * fy, p.crop_x}, 1),
           torch::stack({p.crop_height * sin * fx, p.crop_height * cos * fy, p.crop_y}, 1)},
          1)
          .to(batch.options());
  const int64_t size = options_.size();
  const auto grid = F::affine_grid(theta, {batch.size(0), batch.size(1), size, size}, false);
  return F::grid_sample(batch, grid,
                        F::GridSampleFuncOptions()
                            .mode(torch::kBilinear)
                            .padding_mode(torch::kBorder)
                            .align_corners(false));
}

torch::Tensor Augment::jitter(const torch::Tensor& x, const AugmentParams& p) const {
  const auto shape = std::vector<int64_t>{-1, 1, 1, 1};
  const auto b = p.brightness.to(x.dtype()).view(shape);
  const auto c = p.contrast.to(x.dtype()).view(shape);
  const auto g = p.gamma.to(x.dtype()).view(shape);
  auto y = x * b;
  const auto mean = y.mean({1, 2, 3}, true);
  y = (y - mean) * c + mean;
  return torch::where(g != 1, y.clamp_min(0).pow(g), y);
}

torch::Tensor Augment::blur(const torch::Tensor& x, const AugmentParams& p) const {
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  // One kernel length for the batch, wide enough for the largest sigma; reflection padding needs
  // it shorter than the image.
  int64_t half = static_cast<int64_t>(std::ceil(3 * options_.blur_sigma_max()));
  half = std::max<int64_t>(1, std::min({half, height - 1, width - 1}));
  const auto t = torch::arange(-half, half + 1, x.options().dtype(torch::kFloat64)).view({1, -1});
  const auto sigma = p.blur_sigma.view({-1, 1});
  auto weights = torch::exp(-t * t / (2 * sigma.clamp_min(1e-6).pow(2)));
  // sigma 0: the identity kernel.
  weights = torch::where(sigma > 0, weights, (t == 0).to(torch::kFloat64).expand_as(weights));
  weights = (weights / weights.sum(1, true)).to(x.dtype());
  const auto kernel = weights.repeat_interleave(channels, 0);  // [B * C, K]
  const int64_t k = 2 * half + 1;
  auto y = x.reshape({1, batch * channels, height, width});
  y = F::pad(y, F::PadFuncOptions({half, half, half, half}).mode(torch::kReflect));
  y = F::conv2d(y, kernel.view({batch * channels, 1, 1, k}),
                F::Conv2dFuncOptions().groups(batch * channels));
  y = F::conv2d(y, kernel.view({batch * channels, 1, k, 1}),
                F::Conv2dFuncOptions().groups(batch * channels));
  return y.view({batch, channels, height, width});
}

torch::Tensor Augment::normalise(const torch::Tensor& x) const {
  return domains::normalise(x, options_.mean(), options_.std());
}

torch::Tensor normalise(const torch::Tensor& batch, const std::vector<double>& mean,
                        const std::vector<double>& std) {
  const auto x = batch.to(torch::kFloat32);
  return (x - per_band(mean, x.size(1), x)) / per_band(std, x.size(1), x);
}

torch::Tensor apply_window(const torch::Tensor& batch, const AugmentOptions& options,
                           const torch::Tensor& preset, const torch::Tensor& shift,
                           const torch::Tensor& scale) {
  if (options.window() == WindowMode::kNone) return batch;
  const auto x = batch.to(torch::kFloat32);
  const auto float64 = x.options().dtype(torch::kFloat64);
  torch::Tensor level, width;  // float64 [B] on the batch's device
  if (options.window() == WindowMode::kPresets) {
    const auto levels = constant(torch::tensor(options.window_levels(), torch::kFloat64), float64);
    const auto widths = constant(torch::tensor(options.window_widths(), torch::kFloat64), float64);
    const auto index = preset.to(x.device());
    level = levels.index_select(0, index);
    width = widths.index_select(0, index);
  } else {
    const auto& q = options.window_percentiles();
    const auto bounds = row_quantiles(x.flatten(1), {q[0] / 100, q[1] / 100});  // [2, B]
    level = (bounds[0] + bounds[1]) / 2;
    width = (bounds[1] - bounds[0]).clamp_min(1e-6);
  }
  level = level + shift.to(float64) * width;
  width = width * scale.to(float64);
  const auto low = (level - width / 2).to(x.dtype()).view({-1, 1, 1, 1});
  return ((x - low) / width.to(x.dtype()).view({-1, 1, 1, 1})).clamp(0, 1);
}

torch::Tensor row_quantiles(const torch::Tensor& rows, const std::vector<double>& fractions) {
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) > 0, "row_quantiles expects [B, N], got ",
              rows.sizes());
  const auto sorted = std::get<0>(rows.sort(1));
  const int64_t last = rows.size(1) - 1;
  std::vector<torch::Tensor> quantiles;
  for (const double fraction : fractions) {
    const double position = fraction * static_cast<double>(last);
    const auto below = std::min(static_cast<int64_t>(std::floor(position)), last);
    const double weight = position - static_cast<double>(below);
    const auto low = sorted.select(1, below).to(torch::kFloat64);
    if (weight == 0) {  // a rank that falls on a value: that value, also where it is infinite
      quantiles.push_back(low);
      continue;
    }
    const auto high = sorted.select(1, std::min(below + 1, last)).to(torch::kFloat64);
    quantiles.push_back(low + (high - low) * weight);
  }
  return torch::stack(quantiles);
}

torch::Tensor evaluation_view(const torch::Tensor& batch, const AugmentOptions& options) {
  const int64_t n = batch.size(0);
  const auto on_device = batch.options().dtype(torch::kFloat64);
  const auto x = apply_window(batch, options, torch::zeros({n}, on_device.dtype(torch::kInt64)),
                              torch::zeros({n}, on_device), torch::ones({n}, on_device));
  return normalise(x, options.mean(), options.std());
}

ViewAugment::ViewAugment(AugmentOptions options)
    : augment_(options),
      local_(AugmentOptions(options)
                 .size(options.local_size())
                 .crop_scale_min(options.local_crop_scale_min())
                 .crop_scale_max(options.local_crop_scale_max())) {}

std::vector<torch::Tensor> ViewAugment::operator()(const torch::Tensor& batch, uint64_t seed,
                                                   int64_t step, int64_t count,
                                                   int64_t global_count, bool joint_frames,
                                                   const BatchSlice& slice) const {
  auto generator =
      at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, static_cast<uint64_t>(step)));
  if (global_count < 0) global_count = count;
  const int64_t frames = augment_.options().frames();
  TORCH_CHECK(batch.size(1) % frames == 0, "a batch of ", batch.size(1), " bands does not hold ",
              frames, " frames");
  const int64_t bands = batch.size(1) / frames;
  std::vector<torch::Tensor> views;
  for (int64_t i = 0; i < count; ++i)
    views.push_back((i < global_count ? augment_ : local_)(
        frames == 1 || joint_frames ? batch : batch.narrow(1, (i % frames) * bands, bands),
        generator, slice));
  return views;
}

}  // namespace pretext::domains
