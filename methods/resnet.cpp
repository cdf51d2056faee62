#include "methods/resnet.h"

#include <cmath>
#include <stdexcept>

#include <torch/nn/functional.h>
#include <torch/nn/init.h>

namespace pretext::methods {
namespace nn = torch::nn;
namespace F = torch::nn::functional;

void ResNetOptions::visit_fields(FieldVisitor& visit) {
  visit("width_multiplier", width_multiplier_, Check::above(0));
  visit("small_stem", small_stem_);
}

namespace {

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return nn::Conv2d(
      nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

std::vector<int64_t> blocks_per_stage(int64_t depth) {
  switch (depth) {
    case 18:
      return {2, 2, 2, 2};
    case 34:
    case 50:
      return {3, 4, 6, 3};
    default:
      throw std::invalid_argument("ResNet depth must be 18, 34 or 50");
  }
}

}  // namespace

ResidualBlockImpl::ResidualBlockImpl(int64_t in_planes, int64_t planes, int64_t stride,
                                     bool bottleneck) {
  const int64_t out_planes = bottleneck ? planes * 4 : planes;
  if (bottleneck) {
    // torchvision's ResNet v1.5: the stride sits on the 3x3 convolution.
    conv1_ = register_module("conv1", conv(in_planes, planes, 1, 1));
    bn1_ = register_module("bn1", BatchNorm(BatchNormOptions(planes)));
    conv2_ = register_module("conv2", conv(planes, planes, 3, stride));
    bn2_ = register_module("bn2", BatchNorm(BatchNormOptions(planes)));
    conv3_ = register_module("conv3", conv(planes, out_planes, 1, 1));
    bn3_ = register_module("bn3", BatchNorm(BatchNormOptions(out_planes)));
  } else {
    conv1_ = register_module("conv1", conv(in_planes, planes, 3, stride));
    bn1_ = register_module("bn1", BatchNorm(BatchNormOptions(planes)));
    conv2_ = register_module("conv2", conv(planes, planes, 3, 1));
    bn2_ = register_module("bn2", BatchNorm(BatchNormOptions(planes)));
  }
  if (stride != 1 || in_planes != out_planes) {
    downsample_ =
        register_module("downsample", nn::Sequential(conv(in_planes, out_planes, 1, stride),
                                                     BatchNorm(BatchNormOptions(out_planes))));
  }
}

torch::Tensor ResidualBlockImpl::forward(const torch::Tensor& x) {
  auto y = F::relu(bn1_(conv1_(x)));
  y = bn2_(conv2_(y));
  if (conv3_) y = bn3_(conv3_(F::relu(y)));
  return F::relu(y + (downsample_ ? downsample_->forward(x) : x));
}

ResNetImpl::ResNetImpl(const ResNetOptions& options) : options_(options) {
  const auto stages = blocks_per_stage(options.depth());
  const bool bottleneck = options.depth() >= 50;
  const auto width = [&](int64_t base) {
    return std::max<int64_t>(1, std::llround(base * options.width_multiplier()));
  };
  const int64_t stem = width(64);
  conv1_ = register_module("conv1", options.small_stem() ? conv(options.in_channels(), stem, 3, 1)
                                                         : conv(options.in_channels(), stem, 7, 2));
  bn1_ = register_module("bn1", BatchNorm(BatchNormOptions(stem)));
  int64_t in_planes = stem;
  for (size_t s = 0; s < stages.size(); ++s) {
    const int64_t planes = width(64 << s);
    nn::Sequential stage;
    for (int64_t b = 0; b < stages[s]; ++b) {
      const int64_t stride = (s > 0 && b == 0) ? 2 : 1;
      stage->push_back(ResidualBlock(in_planes, planes, stride, bottleneck));
      in_planes = bottleneck ? planes * 4 : planes;
    }
    layers_.push_back(register_module("layer" + std::to_string(s + 1), stage));
  }
  feature_dim_ = in_planes;
  // torchvision's initialisation: Kaiming (fan_out, ReLU) for convolutions, BN weight 1 bias 0.
  for (auto& module : modules(false)) {
    if (auto* c = module->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* bn = module->as<BatchNormImpl>()) {
      nn::init::ones_(bn->weight);
      nn::init::zeros_(bn->bias);
    }
  }
}

int64_t ResNetImpl::layer_of(const std::string& parameter_name) const {
  // "layer3.1.conv2.weight" -> 3; the stem's conv1 / bn1 -> 0.
  if (parameter_name.rfind("layer", 0) == 0 && parameter_name.size() > 5)
    return parameter_name[5] - '0';
  return 0;
}

torch::Tensor ResNetImpl::forward(const torch::Tensor& images) {
  auto x = F::relu(bn1_(conv1_(images)));
  if (!options_.small_stem()) x = F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2).padding(1));
  for (auto& layer : layers_) x = layer->forward(x);
  return x.mean({2, 3});
}

}  // namespace pretext::methods
