#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>
#include <torch/types.h>

#include "base/errors.h"
#include "methods/resnet.h"
#include "methods/vit.h"
#include "pipelines/checkpoint.h"
#include "pipelines/export.h"
#include "tests/io/test_data.h"

namespace pretext::pipelines {
namespace {

using methods::ResNet;
using methods::ResNetOptions;

// A ResNet with random weights and random batch-norm statistics, so eval-mode outputs depend on
// every parameter and buffer.
ResNet random_resnet(const ResNetOptions& options, uint64_t seed) {
  torch::manual_seed(seed);
  ResNet net(options);
  torch::NoGradGuard no_grad;
  for (auto& item : net->named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().normal_(0, 0.1);
    if (item.key().find("running_var") != std::string::npos) item.value().uniform_(0.5, 1.5);
  }
  for (auto& item : net->named_parameters())
    if (item.key().find("bn") != std::string::npos ||
        item.key().find("downsample.1") != std::string::npos)
      item.value().uniform_(0.5, 1.5);
  net->eval();
  return net;
}

void expect_same_state(torch::nn::Module& a, torch::nn::Module& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  const auto ba = a.named_buffers(), bb = b.named_buffers();
  for (const auto& item : ba) EXPECT_TRUE(torch::equal(item.value(), bb[item.key()])) << item.key();
}

TEST(Export, WeightsLoadBackBitExactly) {
  testing::TempDir dir;
  const auto options = ResNetOptions(18).in_channels(4).width_multiplier(0.25).small_stem(true);
  auto trained = random_resnet(options, 1);
  methods::to_channels_last(*trained);  // as the trainer stores them
  save_state_dict(dir / "encoder.pt", *trained);
  auto fresh = random_resnet(options, 2);
  methods::to_channels_last(*fresh);  // same memory format, same convolution kernels
  EXPECT_TRUE(load_state_dict(dir / "encoder.pt", *fresh).empty());
  expect_same_state(*trained, *fresh);
  const auto x = torch::randn({2, 4, 16, 16});
  EXPECT_TRUE(torch::equal(trained->forward(x), fresh->forward(x)));
}

TEST(Export, AcceptsPythonStyleWrappersAndSkipsClassifierHeads) {
  testing::TempDir dir;
  const auto options = ResNetOptions(18).in_channels(1).width_multiplier(0.125).small_stem(true);
  auto source = random_resnet(options, 3);
  c10::Dict<std::string, torch::Tensor> inner;
  for (const auto& item : source->named_parameters())
    inner.insert("module." + item.key(), item.value());
  for (const auto& item : source->named_buffers())
    inner.insert("module." + item.key(), item.value());
  inner.insert("module.fc.weight", torch::zeros({10, 64}));
  inner.insert("module.fc.bias", torch::zeros({10}));
  c10::impl::GenericDict outer(c10::StringType::get(), c10::AnyType::get());
  outer.insert("state_dict", inner);
  outer.insert("epoch", 7);
  save_pickle(dir / "wrapped.pt", outer);
  auto target = random_resnet(options, 4);
  EXPECT_EQ(load_state_dict(dir / "wrapped.pt", *target),
            (std::vector<std::string>{"fc.bias", "fc.weight"}));
  expect_same_state(*source, *target);
}

TEST(Export, NamesTheKeyThatDoesNotFit) {
  testing::TempDir dir;
  auto r18 = random_resnet(ResNetOptions(18).width_multiplier(0.125), 5);
  auto r34 = random_resnet(ResNetOptions(34).width_multiplier(0.125), 5);
  save_state_dict(dir / "r18.pt", *r18);
  save_state_dict(dir / "r34.pt", *r34);
  const auto message = [](const std::function<void()>& load) {
    try {
      load();
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto missing = message([&] { load_state_dict(dir / "r18.pt", *r34); });
  EXPECT_NE(missing.find("r18.pt: 'layer1.2.bn1.bias' is missing"), std::string::npos) << missing;
  const auto extra = message([&] { load_state_dict(dir / "r34.pt", *r18); });
  EXPECT_NE(extra.find("r34.pt: 'layer1.2.bn1.bias' is not a parameter of this encoder"),
            std::string::npos)
      << extra;
  testing::write_text(dir / "junk.pt", "PK not really");
  const auto junk = message([&] { load_state_dict(dir / "junk.pt", *r18); });
  EXPECT_NE(junk.find("junk.pt: not a state dict"), std::string::npos) << junk;
  const auto absent = message([&] { load_state_dict(dir / "absent.pt", *r18); });
  EXPECT_NE(absent.find("absent.pt: cannot open"), std::string::npos) << absent;
}

// Python's torch and torchvision open what pretext exports, and pretext opens what they save.
TEST(Export, RoundTripsThroughPythonTorchvisionAndTimmLayouts) {
  std::string output;
  if (testing::run_command("/usr/bin/python3 -c 'import torch, torchvision'", &output) != 0)
    GTEST_SKIP() << "Debian's python3-torch / python3-torchvision are not installed "
                    "(scripts/install_deps.sh installs them): "
                 << output;
  testing::TempDir dir;
  // Standard torchvision ResNet-18 (7x7 stem, widths 64..512) and pretext's small layout.
  const std::vector<std::pair<std::string, ResNetOptions>> models = {
      {"resnet18", ResNetOptions(18)},
      {"small", ResNetOptions(18).in_channels(1).width_multiplier(0.25).small_stem(true)}};
  const auto save = [&](const std::string& name, methods::BackboneImpl& net, int64_t channels,
                        int64_t size) {
    save_state_dict(dir / (name + ".pt"), net);
    const auto input = torch::randn({2, channels, size, size});
    c10::Dict<std::string, torch::Tensor> io;
    io.insert("input", input);
    io.insert("output", net.forward(input));
    save_pickle(dir / (name + "_io.pt"), io);
  };
  for (const auto& [name, options] : models)
    save(name, *random_resnet(options, 6), options.in_channels(), 32);
  // The quality benchmark's MAE encoder (mean of patch tokens, fixed positions) and a ViT with a
  // class token and learned positions; export_check.py builds both in timm's layout.
  const std::vector<std::pair<std::string, methods::ViTOptions>> vits = {
      {"vit_mean", methods::ViTOptions()
                       .image_size(28)
                       .patch_size(4)
                       .in_channels(1)
                       .dim(128)
                       .depth(4)
                       .heads(4)
                       .mlp_ratio(2)
                       .class_token(false)
                       .pool("mean")
                       .position_embedding("sincos")},
      {"vit_cls",
       methods::ViTOptions().image_size(32).patch_size(8).in_channels(3).dim(64).depth(2).heads(
           4)}};
  for (const auto& [name, options] : vits) {
    torch::manual_seed(8);
    methods::ViT vit(options);
    torch::NoGradGuard no_grad;
    for (auto& p : vit->parameters())
      if (p.requires_grad()) p.add_(torch::randn_like(p) * 0.1);  // norms away from 1 / 0
    vit->eval();
    save(name, *vit, options.in_channels(), options.image_size());
  }
  const std::string script = std::string(PRETEXT_SOURCE_DIR) + "/tests/pipelines/export_check.py";
  ASSERT_EQ(testing::run_command("/usr/bin/python3 " + script + " " + dir.path(), &output), 0)
      << output;
  // The reverse: a torchvision ResNet-18 saved by torch.save(model.state_dict()), fc included.
  auto net = random_resnet(ResNetOptions(18), 7);
  EXPECT_EQ(load_state_dict(dir / "from_python.pt", *net),
            (std::vector<std::string>{"fc.bias", "fc.weight"}));
  const auto io = load_pickle(dir / "from_python_io.pt", "test data").toGenericDict();
  const auto out = net->forward(io.at("input").toTensor());
  EXPECT_TRUE(torch::allclose(out, io.at("output").toTensor(), 1e-4, 1e-4))
      << (out - io.at("output").toTensor()).abs().max();
  // A ViT in DINOv2's layout (LayerScale, a mask token, positions of a 4x4 grid) into a ViT of
  // 28-pixel images: the positions resampled as DINOv2 does for that size, the same features.
  methods::ViT dinov2(methods::ViTOptions()
                          .image_size(28)
                          .patch_size(14)
                          .dim(32)
                          .depth(2)
                          .heads(4)
                          .layer_scale_init(1e-5));
  EXPECT_EQ(load_state_dict(dir / "dinov2.pt", *dinov2), (std::vector<std::string>{"mask_token"}));
  dinov2->eval();
  const auto dinov2_io = load_pickle(dir / "dinov2_io.pt", "test data").toGenericDict();
  const auto features = dinov2->forward(dinov2_io.at("input").toTensor());
  EXPECT_TRUE(torch::allclose(features, dinov2_io.at("output").toTensor(), 1e-4, 1e-4))
      << (features - dinov2_io.at("output").toTensor()).abs().max();
  // A state dict of a model that lived on a GPU loads onto this CPU machine, the same weights.
  auto from_gpu = random_resnet(ResNetOptions(18), 8);
  EXPECT_EQ(load_state_dict(dir / "from_gpu.pt", *from_gpu).size(), 2u);
  auto cpu_params = net->named_parameters();
  for (const auto& p : from_gpu->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), cpu_params[p.key()])) << p.key();
}

}  // namespace
}  // namespace pretext::pipelines
