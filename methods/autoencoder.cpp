#include "methods/autoencoder.h"

#include <algorithm>
#include <cmath>

#include <torch/nn/functional.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/upsampling.h>

#include "base/device.h"
#include "methods/batch_norm.h"
#include "methods/losses.h"

namespace pretext::methods {
namespace F = torch::nn::functional;
namespace nn = torch::nn;

void AutoencoderOptions::visit_fields(FieldVisitor& visit) {
  visit("decoder_channels", decoder_channels_, Check::between(1, 4096));
  visit("decoder_grid", decoder_grid_, Check::between(1, 64));
  visit("decoder_stages", decoder_stages_, Check::between(0, 8));
  visit("noise_std", noise_std_, Check::at_least(0));
  visit("mask_ratio", mask_ratio_, Check::from_below(0, 1));
  visit("mask_patch", mask_patch_, Check::between(1, 1024));
}

AutoencoderImpl::AutoencoderImpl(std::shared_ptr<BackboneImpl> backbone,
                                 const AutoencoderOptions& options)
    : backbone_(std::move(backbone)), options_(options) {
  register_module("backbone", backbone_);
  const int64_t grid = options_.decoder_grid();
  int64_t channels = options_.decoder_channels();
  seed_ = register_module("decoder_embed",
                          nn::Linear(backbone_->feature_dim(), channels * grid * grid));
  stages_ = nn::Sequential();
  for (int64_t s = 0; s < options_.decoder_stages(); ++s) {
    const int64_t next = std::max<int64_t>(8, channels / 2);
    stages_->push_back(nn::Upsample(
        nn::UpsampleOptions().scale_factor(std::vector<double>{2, 2}).mode(torch::kNearest)));
    stages_->push_back(nn::Conv2d(nn::Conv2dOptions(channels, next, 3).padding(1).bias(false)));
    stages_->push_back(BatchNorm(BatchNormOptions(next)));
    stages_->push_back(nn::ReLU(true));
    channels = next;
  }
  register_module("decoder", stages_);
  to_bands_ = register_module(
      "decoder_pred",
      nn::Conv2d(nn::Conv2dOptions(channels, backbone_->in_channels(), 3).padding(1)));
  draws_ = StepDraws(*this, "corruption_seed");
}

torch::Tensor AutoencoderImpl::corrupt(const torch::Tensor& images,
                                       const at::Generator& generator) const {
  const int64_t batch = images.size(0), h = images.size(2), w = images.size(3);
  auto x = images;
  if (options_.noise_std() > 0) {
    // Normal draws from the uniform ones by Box-Muller, so that they come from the global
    // batch's rows like every other draw.
    // In double: float32 log and cos may round differently in vectorised and scalar code, so
    // ranks of other batch sizes would draw noise one ulp apart.
    const auto u = uniform_rows(generator, batch_slice(), batch, {2, images.size(1), h, w})
                       .to(torch::kFloat64);
    const auto normal =
        torch::sqrt(-2 * torch::log1p(-u.select(1, 0))) * torch::cos(2 * M_PI * u.select(1, 1));
    x = x + to_device(normal, x.device()).to(x.dtype()) * options_.noise_std();
  }
  if (options_.mask_ratio() > 0) {
    const int64_t p = options_.mask_patch();
    const int64_t rows = (h + p - 1) / p, columns = (w + p - 1) / p;
    const auto kept = uniform_rows(generator, batch_slice(), batch, {1, rows, columns})
                          .ge(options_.mask_ratio())
                          .repeat_interleave(p, 2)
                          .repeat_interleave(p, 3)
                          .slice(2, 0, h)
                          .slice(3, 0, w);
    x = x * to_device(kept, x.device()).to(x.dtype());
  }
  return x;
}

torch::Tensor AutoencoderImpl::decode(const torch::Tensor& features, int64_t size) {
  const int64_t grid = options_.decoder_grid();
  auto x = stages_->forward(
      seed_(features).view({features.size(0), options_.decoder_channels(), grid, grid}));
  if (x.size(2) != size)
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{size, size})
                              .mode(torch::kBilinear)
                              .align_corners(false));
  return to_bands_(x);
}

StepOutput AutoencoderImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(!views.empty(), "the autoencoder takes 1 view, got none");
  const auto& images = views[0];
  TORCH_CHECK(images.size(2) == images.size(3), "the autoencoder takes square images, got ",
              images.size(2), "x", images.size(3));
  const auto features = backbone_->forward(corrupt(images, draws_.generator()));
  StepOutput out;
  out.loss = F::mse_loss(decode(features, images.size(2)), images);
  out.logs["embedding_std"] = embedding_std(features.detach());
  return out;
}

}  // namespace pretext::methods
