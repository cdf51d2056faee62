#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/step_random.h"

namespace pretext::methods {

/// The autoencoder of the source texts' pretext tasks: the encoder's pooled feature vector, the
/// only path from the input to the output, through a light convolutional decoder back to the
/// image, and the mean squared error against the image. With noise_std or mask_ratio the encoder
/// sees a corrupted image and the decoder restores the clean one (a denoising autoencoder,
/// Vincent et al. 2008; with hidden blocks, in the spirit of Pathak et al.'s context encoders,
/// whose loss is on the whole image here, not the holes alone).
///   Autoencoder ae(backbone, AutoencoderOptions().decoder_channels(64).noise_std(0.1));
struct AutoencoderOptions {
  /// Decoder: a Linear from the features to decoder_channels maps of decoder_grid x decoder_grid
  /// pixels, then decoder_stages of (nearest-neighbour upsampling x2, 3x3 convolution, batch
  /// norm, ReLU), the channels halving each stage (down to 8), then bilinear resampling to the
  /// image size and a 3x3 convolution to the bands.
  TORCH_ARG(int64_t, decoder_channels) = 128;
  TORCH_ARG(int64_t, decoder_grid) = 4;
  TORCH_ARG(int64_t, decoder_stages) = 3;
  /// Denoising: the standard deviation of Gaussian noise added to the encoder's input, in the
  /// normalised units of the views (augment.mean / std); 0: none.
  TORCH_ARG(double, noise_std) = 0.0;
  /// Masking: the probability that each mask_patch x mask_patch block of the encoder's input is
  /// set to 0 (the band's mean after normalisation); 0: none.
  TORCH_ARG(double, mask_ratio) = 0.0;
  TORCH_ARG(int64_t, mask_patch) = 4;

 public:
  void visit_fields(FieldVisitor& visit);
};

class AutoencoderImpl : public MethodImpl {
 public:
  AutoencoderImpl(std::shared_ptr<BackboneImpl> backbone, const AutoencoderOptions& options);
  /// One view; the loss is the mean squared error of decode(encoder(corrupt(view))) against the
  /// view, over every pixel and band.
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 1; }
  void after_optimizer_step(int64_t step, int64_t /*total_steps*/) override {
    draws_.set_step(step);
  }
  std::shared_ptr<BackboneImpl> encoder() override { return backbone_; }

  /// The encoder's input: `images` [B, C, H, W] with noise and hidden blocks drawn from
  /// `generator` for the global batch (batch_slice()); `images` itself without corruption.
  torch::Tensor corrupt(const torch::Tensor& images, const at::Generator& generator) const;
  /// Features [B, D] -> images [B, bands, size, size].
  torch::Tensor decode(const torch::Tensor& features, int64_t size);

 private:
  std::shared_ptr<BackboneImpl> backbone_;
  AutoencoderOptions options_;
  torch::nn::Linear seed_{nullptr};        // features -> the first maps
  torch::nn::Sequential stages_{nullptr};  // upsampling stages
  torch::nn::Conv2d to_bands_{nullptr};
  StepDraws draws_;  // the corruption of each step
};
TORCH_MODULE(Autoencoder);

}  // namespace pretext::methods
