#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>
#include <torch/types.h>

#include "base/errors.h"
#include "methods/dino.h"
#include "methods/momentum.h"
#include "methods/vit.h"
#include "pipelines/checkpoint.h"
#include "pipelines/commands.h"
#include "pipelines/demo.h"
#include "pipelines/encoder_source.h"
#include "pipelines/export.h"
#include "pipelines/optimizer.h"
#include "pipelines/run_config.h"
#include "tests/io/test_data.h"
#include "tests/pipelines/tiny_run.h"

namespace pretext::pipelines {
namespace {

namespace fs = std::filesystem;

class TrainerTest : public TinyRunTest {
 protected:
  void expect_resume_is_exact(const std::string& model,
                              const std::string& method = "  name: simclr\n  projection_dim: 16\n",
                              const std::vector<std::string>& overrides = {});
};

// The SimCLR loss of `method` on one fixed pair of augmented views of the first 32 tiles.
double fixed_view_loss(methods::MethodImpl& method, const RunConfig& cfg,
                       const io::Dataset& dataset) {
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < 32; ++i) images.push_back(dataset.get(i).pixels);
  const auto views = domains::ViewAugment(cfg.augment)(torch::stack(images), 99, 0);
  torch::NoGradGuard no_grad;
  return method.step(views).loss.item<double>();
}

TEST_F(TrainerTest, AShortRunLowersTheLoss) {
  const auto cfg = config(runs_ / "a", {"train.epochs=30", "train.optimizer=adamw",
                                        "train.lr=0.003", "train.weight_decay=0"});
  const auto result = pretrain(cfg, false, "", log_);
  EXPECT_EQ(result.steps, 90);  // 48 train tiles / 16 = 3 steps per epoch
  EXPECT_EQ(losses(runs_ / "a").size(), 90u);
  for (const char* file : {"config.yaml", "run.log", "metrics.csv", "checkpoint.pt"})
    EXPECT_TRUE(fs::exists(runs_ / ("a/" + std::string(file)))) << file;
  EXPECT_FALSE(fs::exists(runs_ / "a/checkpoint.pt.tmp"));

  // Same views, same initial weights (from the run seed), before and after training.
  const auto dataset = open_data(cfg, DataUse::kPretraining, log_).dataset;
  auto initial = cfg.build_method(3);
  auto trained = cfg.build_method(3);
  load_checkpoint(runs_ / "a/checkpoint.pt", *trained, nullptr, torch::Device("cpu"));
  const double before = fixed_view_loss(*initial, cfg, *dataset);
  const double after = fixed_view_loss(*trained, cfg, *dataset);
  EXPECT_LT(after, before - 0.3) << "before " << before << " after " << after;
}

std::map<std::string, torch::Tensor> state_of(methods::MethodImpl& method) {
  std::map<std::string, torch::Tensor> state;
  for (const auto& p : method.named_parameters()) state[p.key()] = p.value().clone();
  for (const auto& b : method.named_buffers()) state[b.key()] = b.value().clone();
  return state;
}

// Runs 9 steps straight and 4 + 5 with an interruption, with the given model and method sections.
void TrainerTest::expect_resume_is_exact(const std::string& model,
                                         const std::string& method_section,
                                         const std::vector<std::string>& overrides) {
  // 3 steps per epoch; the interruption at step 4 falls mid-epoch.
  auto settings = overrides;
  settings.push_back("train.epochs=3");
  const auto straight_cfg = config(runs_ / "straight", settings, model, method_section);
  const auto dataset = open_data(straight_cfg, DataUse::kPretraining, log_).dataset;
  const domains::ViewAugment augment(straight_cfg.augment);
  const auto loader = io::LoaderOptions().workers(2);
  const auto make = [&](const RunConfig& cfg) {
    TrainerContext context;
    context.run_dir = RunDir(cfg.run.dir());
    context.seed = 5;
    context.config_text = cfg.file->resolved_yaml();
    auto method = cfg.build_method(dataset->channels());
    return std::make_pair(method, std::make_unique<Trainer>(method, cfg.train, context));
  };

  auto [straight, straight_trainer] = make(straight_cfg);
  EXPECT_EQ(straight_trainer->fit(dataset, augment, loader).steps, 9);

  const auto split_cfg = config(runs_ / "split", settings, model, method_section);
  {
    auto [first, first_trainer] = make(split_cfg);
    const auto result =
        first_trainer->fit(dataset, augment, loader, [](int64_t step) { return step == 4; });
    EXPECT_TRUE(result.interrupted);
    EXPECT_EQ(result.steps, 4);
  }
  auto [resumed, resumed_trainer] = make(split_cfg);
  resumed_trainer->resume();
  EXPECT_EQ(resumed_trainer->state().step, 4);
  EXPECT_EQ(resumed_trainer->state().epoch, 1);
  EXPECT_EQ(resumed_trainer->state().batch_in_epoch, 1);
  EXPECT_EQ(resumed_trainer->fit(dataset, augment, loader).steps, 9);

  const auto expected = state_of(*straight);
  const auto actual = state_of(*resumed);
  ASSERT_EQ(expected.size(), actual.size());
  for (const auto& [name, tensor] : expected)
    EXPECT_TRUE(torch::equal(tensor, actual.at(name))) << name;
  // The metrics of the resumed run are those of the straight run, step for step.
  EXPECT_EQ(losses(runs_ / "straight"), losses(runs_ / "split"));
}

TEST_F(TrainerTest, ResumeAfterAnInterruptionGivesTheSameWeights) {
  expect_resume_is_exact(kResNet);
}

TEST_F(TrainerTest, LarsResumesExactlyWithItsMomentumBuffers) {
  expect_resume_is_exact(kResNet, "  name: simclr\n  projection_dim: 16\n",
                         {"train.optimizer=lars", "train.lr=1.0", "train.trust_coefficient=0.02"});
}

TEST_F(TrainerTest, MaeResumesExactlyWithTheSameMasks) {
  expect_resume_is_exact(kViT, "  name: mae\n  decoder_dim: 16\n  decoder_depth: 1\n");
}

TEST_F(TrainerTest, SimMimResumesExactlyWithTheSameMasks) {
  expect_resume_is_exact(kViT, "  name: simmim\n  mask_patch_size: 8\n");
}

constexpr const char* kVqVae =
    "  name: vqvae\n  codebook_size: 32\n  code_dim: 8\n  decoder_dim: 16\n  decoder_heads: "
    "2\n  decoder_depth: 1\n";

TEST_F(TrainerTest, BeitLearnsAVqVaeRunsTokensAndResumesExactly) {
  // The tokenizer: a vqvae run of one epoch on the same data.
  const auto tokenizer_cfg = config(runs_ / "tokenizer", {"train.epochs=1"}, kViT, kVqVae);
  EXPECT_EQ(pretrain(tokenizer_cfg, false, "", log_).steps, 3);
  const auto checkpoint = runs_ / "tokenizer/checkpoint.pt";
  expect_resume_is_exact(kViT, "  name: beit\n  tokenizer: " + checkpoint + "\n");
  // Its evaluation and export see the ViT alone, as any method's.
  const auto beit =
      config(runs_ / "straight", {}, kViT, "  name: beit\n  tokenizer: " + checkpoint + "\n");
  EXPECT_EQ(load_method(beit, {}, 3, log_)->encoder()->feature_dim(), 16);
}

TEST_F(TrainerTest, BeitSaysWhyItCannotUseItsTokenizer) {
  const auto simclr_cfg = config(runs_ / "simclr", {"train.epochs=1"});
  pretrain(simclr_cfg, false, "", log_);
  const auto tokenizer_cfg = config(runs_ / "tokenizer", {"train.epochs=1"}, kViT, kVqVae);
  pretrain(tokenizer_cfg, false, "", log_);
  const auto error_of = [&](const std::string& tokenizer, std::vector<std::string> extra = {}) {
    try {
      config(runs_ / "beit", extra, kViT, "  name: beit\n  tokenizer: " + tokenizer + "\n")
          .build_method(3);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const auto at_key = [](const std::string& message) {
    return message.rfind("trainer_test.yaml:", 0) == 0 &&
           message.find(": method.tokenizer: ") != std::string::npos;
  };
  const auto missing = error_of(runs_ / "none.pt");
  EXPECT_TRUE(at_key(missing)) << missing;
  EXPECT_NE(missing.find("none.pt: no checkpoint here"), std::string::npos) << missing;
  const auto simclr = error_of(runs_ / "simclr/checkpoint.pt");
  EXPECT_TRUE(at_key(simclr)) << simclr;
  EXPECT_NE(simclr.find("the checkpoint of a simclr run, not of a vqvae run"), std::string::npos)
      << simclr;
  const auto normalised = error_of(runs_ / "tokenizer/checkpoint.pt", {"augment.mean=[0.4]"});
  EXPECT_TRUE(at_key(normalised)) << normalised;
  EXPECT_NE(normalised.find("would not see the same pixels"), std::string::npos) << normalised;
  EXPECT_EQ(error_of(runs_ / "tokenizer/checkpoint.pt"), "no error");
}

TEST_F(TrainerTest, IbotResumesExactlyWithTheSameMasksAndCentres) {
  expect_resume_is_exact(kViT,
                         "  name: ibot\n  out_dim: 32\n  patch_out_dim: 32\n  hidden_dim: 16\n"
                         "  bottleneck_dim: 8\n  local_crops: 0\n");
}

TEST_F(TrainerTest, MocoResumesExactlyWithItsQueueOfKeys) {
  // The queue (buffers queue, queue_position) and the momentum encoder are in the checkpoint.
  expect_resume_is_exact(
      kResNet,
      "  name: moco\n  projection_dim: 8\n  projection_hidden_dim: 16\n  queue_size: 40\n");
}

TEST_F(TrainerTest, PretextTasksResumeExactlyWithTheSameDraws) {
  // The jigsaw's orders and tile offsets, the autoencoder's noise and hidden blocks, drawn anew
  // each step from the seed in the checkpoint.
  expect_resume_is_exact(kResNet,
                         "  name: jigsaw\n  grid: 2\n  permutations: 24\n  tile_dim: 16\n"
                         "  hidden_dim: 16\n");
  expect_resume_is_exact(kResNet,
                         "  name: autoencoder\n  decoder_channels: 8\n  noise_std: 0.2\n"
                         "  mask_ratio: 0.3\n");
}

// Every parameter and buffer of `a` equals `b`'s (same layout).
void expect_same_weights(torch::nn::Module& a, torch::nn::Module& b, const std::string& what) {
  auto theirs = b.named_parameters();
  for (const auto& p : a.named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), theirs[p.key()])) << what << " " << p.key();
  auto buffers = b.named_buffers();
  for (const auto& item : a.named_buffers())
    EXPECT_TRUE(torch::equal(item.value(), buffers[item.key()])) << what << " " << item.key();
}

TEST_F(TrainerTest, InitFromSetsEveryCopyOfTheEncoder) {
  // A state dict of an encoder trained elsewhere: here, one from another seed.
  const std::string weights = runs_ / "encoder.pt";
  save_state_dict(weights, *config(runs_ / "w", {"run.seed=77"}).build_method(3)->encoder());
  const std::vector<std::pair<std::string, std::string>> methods = {
      {"dino",
       "  name: dino\n  out_dim: 32\n  hidden_dim: 16\n  bottleneck_dim: 8\n  local_crops: 0\n"},
      {"moco", "  name: moco\n  projection_dim: 8\n  projection_hidden_dim: 16\n"},
      {"byol", "  name: byol\n  projection_dim: 8\n  projection_hidden_dim: 16\n"}};
  for (const auto& [name, section] : methods) {
    auto method = config(runs_ / name, {}, kResNet, section).build_method(3);
    init_encoder_from(weights, *method, log_);
    auto loaded = config(runs_ / "w", {"run.seed=77"}).build_method(3)->encoder();
    load_state_dict(weights, *loaded);
    expect_same_weights(*method->encoder(), *loaded, name + " encoder");
    // The network that starts as the encoder's copy is that copy again, not a random start.
    if (auto* dino = dynamic_cast<methods::DinoImpl*>(method.get()))
      expect_same_weights(*dino->student(), *dino->encoder(), "dino student");
    else
      expect_same_weights(*dynamic_cast<methods::MomentumMethodImpl&>(*method).momentum_encoder(),
                          *method->encoder(), name + " momentum encoder");
  }
}

TEST_F(TrainerTest, AdamAndAdamWTakeTheConfiguredBetas) {
  for (const char* optimizer : {"adamw", "adam"}) {
    const auto cfg = config(runs_ / optimizer, {std::string("train.optimizer=") + optimizer,
                                                "train.betas=[0.8, 0.95]"});
    TrainerContext context;
    context.run_dir = RunDir(cfg.run.dir());
    const Trainer trainer(cfg.build_method(3), cfg.train, context);
    for (const auto& group : trainer.optimizer().param_groups()) {
      const auto betas =
          std::string(optimizer) == "adamw"
              ? static_cast<const torch::optim::AdamWOptions&>(group.options()).betas()
              : static_cast<const torch::optim::AdamOptions&>(group.options()).betas();
      EXPECT_EQ(std::get<0>(betas), 0.8) << optimizer;
      EXPECT_EQ(std::get<1>(betas), 0.95) << optimizer;
    }
  }
  try {
    config(runs_ / "x", {"train.betas=[0.9]"});
    ADD_FAILURE() << "one beta accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--set train.betas: must be two numbers"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(TrainerTest, WeightDecayFollowsDinosCosineOnTheDecayingParametersOnly) {
  const auto cfg = config(runs_ / "wd", {"train.optimizer=adamw", "train.weight_decay=0.04",
                                         "train.weight_decay_schedule=cosine",
                                         "train.weight_decay_end=0.4", "train.max_steps=5"});
  TrainerContext context;
  context.run_dir = RunDir(cfg.run.dir());
  context.seed = 5;
  Trainer trainer(cfg.build_method(3), cfg.train, context);
  // end + (start - end) (1 + cos(pi step / total)) / 2, over every step (no warm-up).
  EXPECT_DOUBLE_EQ(trainer.weight_decay_at(0, 10), 0.04);
  EXPECT_NEAR(trainer.weight_decay_at(5, 10), 0.22, 1e-12);
  EXPECT_NEAR(trainer.weight_decay_at(10, 10), 0.4, 1e-12);
  const auto data = open_data(cfg, DataUse::kPretraining, log_);
  trainer.fit(data.dataset, domains::ViewAugment(data.augment), io::LoaderOptions().workers(1));
  // After 5 steps the decaying group holds step 4's value; biases and norms still none.
  const auto& groups = trainer.optimizer().param_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_NEAR(weight_decay_of(groups[0], OptimizerKind::kAdamw), trainer.weight_decay_at(4, 5),
              1e-12);
  EXPECT_EQ(weight_decay_of(groups[1], OptimizerKind::kAdamw), 0.0);
}

TEST_F(TrainerTest, SimSiamsPredictorKeepsThePeakRateThroughTheSchedule) {
  for (const bool fix : {true, false}) {
    const auto cfg = config(runs_ / (fix ? "fixed" : "scheduled"),
                            {"train.optimizer=adamw", "train.lr=0.01", "train.weight_decay=0.05",
                             "train.warmup_steps=10", "train.max_steps=3"},
                            kResNet,
                            std::string("  name: simsiam\n  projection_dim: 8\n"
                                        "  projection_hidden_dim: 16\n  predictor_hidden_dim: 4\n"
                                        "  fix_predictor_lr: ") +
                                (fix ? "true" : "false") + "\n");
    TrainerContext context;
    context.run_dir = RunDir(cfg.run.dir());
    auto method = cfg.build_method(3);
    Trainer trainer(method, cfg.train, context);
    const auto data = open_data(cfg, DataUse::kPretraining, log_);
    trainer.fit(data.dataset, domains::ViewAugment(data.augment), io::LoaderOptions().workers(1));
    // The last of 3 steps is in the warm-up: the schedule's rate is 3/10 of the peak.
    const double scheduled = trainer.lr_at(2, 3);
    ASSERT_NEAR(scheduled, 0.003, 1e-12);
    int64_t predictor = 0, others = 0;
    for (const auto& group : trainer.optimizer().param_groups()) {
      const double lr = group.options().get_lr();
      const auto decay =
          static_cast<const torch::optim::AdamWOptions&>(group.options()).weight_decay();
      for (const auto& p : group.params())
        for (const auto& item : method->named_parameters()) {
          if (!item.value().is_same(p)) continue;
          const bool in_predictor = item.key().rfind("predictor.", 0) == 0;
          (in_predictor ? predictor : others) += 1;
          EXPECT_DOUBLE_EQ(lr, in_predictor && fix ? 0.01 : scheduled) << item.key();
          // Weight decay as everywhere: on weights, not on biases and norms.
          EXPECT_DOUBLE_EQ(decay, p.dim() > 1 ? 0.05 : 0.0) << item.key();
        }
    }
    // Linear (no bias: batch norm follows), batch norm's weight and bias, Linear's weight and bias.
    EXPECT_EQ(predictor, 5);
    EXPECT_EQ(predictor + others, static_cast<int64_t>(method->parameters().size()));
  }
}

TEST(Optimizer, PerParameterClippingBoundsEachGradientOnItsOwn) {
  auto big = torch::zeros({2}, torch::requires_grad());
  auto small = torch::zeros({2}, torch::requires_grad());
  big.mutable_grad() = torch::tensor({3.0f, 4.0f});    // norm 5
  small.mutable_grad() = torch::tensor({0.3f, 0.4f});  // norm 0.5
  clip_gradients_per_parameter({big, small}, 1.0);
  EXPECT_NEAR(big.grad().norm().item<double>(), 5.0 / (5.0 + 1e-6), 1e-6);
  EXPECT_TRUE(torch::allclose(big.grad() / big.grad().norm(), torch::tensor({0.6f, 0.8f})));
  EXPECT_TRUE(torch::equal(small.grad(), torch::tensor({0.3f, 0.4f})));  // under the bound
}

TEST(Optimizer, LarsScalesEachWeightsStepToItsNormAndSparesBiases) {
  auto weight = torch::tensor({{3.0, 4.0}}, torch::kDouble).requires_grad_();  // norm 5
  auto zero = torch::zeros({1, 2}, torch::kDouble).requires_grad_();           // norm 0: no scaling
  auto bias = torch::tensor({1.0, 2.0}, torch::kDouble).requires_grad_();
  const auto optimizer = make_optimizer(
      OptimizerKind::kLars, {{{weight, zero}, 2.0, 0.1}, {{bias}, 2.0, 0.0}}, 0.9, {}, 1e-3);
  for (int step = 0; step < 2; ++step) {
    weight.mutable_grad() = torch::tensor({{0.3, 0.4}}, torch::kDouble);
    zero.mutable_grad() = torch::tensor({{1.0, 0.0}}, torch::kDouble);
    bias.mutable_grad() = torch::tensor({0.5, 0.5}, torch::kDouble);
    optimizer->step();
  }
  // Step 1: g + 0.1 w = (0.6, 0.8), of norm 1, scaled by 0.001 x 5 / 1: (0.003, 0.004); times
  // lr 2: w = (2.994, 3.992) = 0.998 w0. Step 2: g + 0.1 w = 0.999 (0.6, 0.8), scaled by
  // 0.001 x 4.99 / 0.999: (0.002994, 0.003992); the buffer 0.9 (0.003, 0.004) + that
  // = (0.005694, 0.007592); w = (2.994, 3.992) - 2 x buffer.
  EXPECT_TRUE(
      torch::allclose(weight, torch::tensor({{2.982612, 3.976816}}, torch::kDouble), 0, 1e-12))
      << weight;
  // The zero tensor first takes the plain step: (1, 0) times lr 2, to (-2, 0) of norm 2. Step 2:
  // g + 0.1 w = (0.8, 0) scaled by 0.001 x 2 / 0.8: (0.002, 0); buffer (0.902, 0).
  EXPECT_TRUE(torch::allclose(zero, torch::tensor({{-3.804, 0.0}}, torch::kDouble), 0, 1e-12))
      << zero;
  // The bias is SGD's: buffers (0.5, 0.5) then (0.95, 0.95), times lr 2.
  EXPECT_TRUE(torch::allclose(bias, torch::tensor({-1.9, -0.9}, torch::kDouble), 0, 1e-12)) << bias;
  // The groups' weight decay is theirs again after the step (the schedule reads and sets it).
  EXPECT_EQ(weight_decay_of(optimizer->param_groups()[0], OptimizerKind::kLars), 0.1);
}

TEST(LossScale, AnInfGradientSkipsTheStepAndHalvesTheScale) {
  torch::manual_seed(0);
  torch::nn::Linear model(3, 2);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(0.1));
  const auto options = TrainerOptions().grad_clip(1.0);
  const auto x = torch::randn({4, 3});
  const auto before = model->weight.detach().clone();
  LossScale scale;
  // An inf in the loss gives inf gradients: no step, half the scale, the run of good steps reset.
  scale.good_steps = 5;
  const auto inf = torch::tensor(std::numeric_limits<float>::infinity());
  EXPECT_FALSE(
      backward_and_step(model(x).sum() * inf, optimizer, model->parameters(), options, &scale));
  EXPECT_TRUE(torch::equal(model->weight, before));
  EXPECT_EQ(scale.scale, LossScale::kInitial / 2);
  EXPECT_EQ(scale.good_steps, 0);

  // A finite step is the unscaled one (a power-of-two scale divides out exactly), clipped after
  // unscaling: the same as the step without a scale.
  torch::nn::Linear reference(3, 2);
  reference->weight.data().copy_(model->weight);
  reference->bias.data().copy_(model->bias);
  torch::optim::SGD reference_optimizer(reference->parameters(), torch::optim::SGDOptions(0.1));
  EXPECT_TRUE(backward_and_step((model(x) * 1e-3).pow(2).sum(), optimizer, model->parameters(),
                                options, &scale));
  EXPECT_TRUE(backward_and_step((reference(x) * 1e-3).pow(2).sum(), reference_optimizer,
                                reference->parameters(), options, nullptr));
  EXPECT_FALSE(torch::equal(model->weight, before));
  EXPECT_TRUE(torch::allclose(model->weight, reference->weight, 0, 1e-7));
  EXPECT_TRUE(torch::allclose(model->bias, reference->bias, 0, 1e-7));
  EXPECT_EQ(scale.good_steps, 1);

  // Growth: the interval's finite steps in a row double the scale.
  LossScale growing{1024.0, 0};
  update_loss_scale(growing, true, 2);
  EXPECT_EQ(growing.scale, 1024.0);
  update_loss_scale(growing, true, 2);
  EXPECT_EQ(growing.scale, 2048.0);
  EXPECT_EQ(growing.good_steps, 0);
}

TEST_F(TrainerTest, TheLossScaleIsPartOfTheCheckpoint) {
  auto method = config(runs_ / "s").build_method(3);
  TrainState state;
  state.step = 3;
  state.loss_scale = {1024.0, 7};
  save_checkpoint(runs_ / "scale.pt", *method, nullptr, state, "config");
  const auto back = load_checkpoint(runs_ / "scale.pt", *method, nullptr, torch::Device("cpu"));
  EXPECT_EQ(back.loss_scale.scale, 1024.0);
  EXPECT_EQ(back.loss_scale.good_steps, 7);
}

TEST_F(TrainerTest, Bf16ComputesInBf16AndKeepsWeightsAndStatisticsInFp32) {
  const std::vector<std::pair<std::string, std::string>> methods = {
      {"simclr", "  name: simclr\n  projection_dim: 16\n"},
      {"moco",
       "  name: moco\n  projection_dim: 8\n  projection_hidden_dim: 16\n  queue_size: 40\n"},
      {"dino",
       "  name: dino\n  out_dim: 32\n  hidden_dim: 16\n  bottleneck_dim: 8\n  local_crops: 0\n"}};
  for (const auto& [name, section] : methods) {
    for (const char* precision : {"fp32", "bf16"}) {
      const auto cfg =
          config(runs_ / (name + precision),
                 {"train.epochs=1", std::string("run.precision=") + precision}, kResNet, section);
      TrainerContext context;
      context.run_dir = RunDir(cfg.run.dir());
      context.seed = 5;
      context.precision = cfg.run.precision();
      auto method = cfg.build_method(3);
      Trainer trainer(method, cfg.train, context);
      const auto data = open_data(cfg, DataUse::kPretraining, log_);
      const auto result = trainer.fit(data.dataset, domains::ViewAugment(data.augment),
                                      io::LoaderOptions().workers(1));
      EXPECT_TRUE(std::isfinite(result.last_loss)) << name << " " << precision;
      // Weights, optimiser-updated or EMA, and every buffer (centre, queue, BN statistics) stay
      // fp32.
      for (const auto& [key, tensor] : state_of(*method))
        if (tensor.is_floating_point()) {
          EXPECT_EQ(tensor.scalar_type(), torch::kFloat) << name << " " << key;
        }
    }
    // The forward really ran in bf16 (8 mantissa bits, 0.4% per rounding): the first step's loss,
    // from the same weights and views, differs from fp32's, by under 5% (DINO's logits, divided
    // by temperatures of 0.1 and 0.04, amplify the rounding most: 2.4% here).
    const double fp32_loss = losses(runs_ / (name + "fp32")).at(0);
    const double bf16_loss = losses(runs_ / (name + "bf16")).at(0);
    EXPECT_NE(bf16_loss, fp32_loss) << name;
    EXPECT_NEAR(bf16_loss, fp32_loss, 0.05 * std::abs(fp32_loss)) << name;
  }
  try {
    config(runs_ / "fp16", {"run.precision=fp16"});
    ADD_FAILURE() << "fp16 accepted on the CPU";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("run.precision: fp16 needs run.device cuda"),
              std::string::npos)
        << e.what();
  }
}

TEST(Optimizer, GlobalClippingIsTorchsClipGradNorm) {
  for (const double max_norm : {1.0, 100.0}) {  // clipped, and under the bound
    auto a = torch::zeros({2}, torch::requires_grad());
    auto b = torch::zeros({3}, torch::requires_grad());
    auto unused = torch::zeros({1}, torch::requires_grad());  // no gradient: left out
    a.mutable_grad() = torch::tensor({3.0f, 4.0f});
    b.mutable_grad() = torch::tensor({1.0f, 2.0f, 2.0f});
    auto a_ref = a.detach().clone().requires_grad_(true);
    auto b_ref = b.detach().clone().requires_grad_(true);
    a_ref.mutable_grad() = a.grad().clone();
    b_ref.mutable_grad() = b.grad().clone();
    clip_gradients_globally({a, b, unused}, max_norm);
    torch::nn::utils::clip_grad_norm_(std::vector<torch::Tensor>{a_ref, b_ref}, max_norm);
    EXPECT_TRUE(torch::allclose(a.grad(), a_ref.grad())) << max_norm;
    EXPECT_TRUE(torch::allclose(b.grad(), b_ref.grad())) << max_norm;
    EXPECT_FALSE(unused.grad().defined());
  }
}

TEST_F(TrainerTest, ResumeRefusesAnotherConfigAndACorruptCheckpoint) {
  const auto cfg = config(runs_ / "r", {"train.epochs=1"});
  pretrain(cfg, false, "", log_);
  try {
    pretrain(config(runs_ / "r", {"train.epochs=1", "train.lr=0.2"}), true, "", log_);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("written with a different config (line "),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(": '  lr: 0.2' was '  lr: 0.1'"), std::string::npos)
        << e.what();
  }
  testing::truncate_file(runs_ / "r/checkpoint.pt", 0.5);
  try {
    pretrain(cfg, true, "", log_);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(runs_ / "r/checkpoint.pt: not a checkpoint"),
              std::string::npos)
        << e.what();
  }
  try {
    pretrain(config(runs_ / "fresh"), true, "", log_);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no checkpoint here"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTest, LearningRateWarmsUpThenFollowsACosine) {
  const auto cfg =
      config(runs_ / "lr", {"train.lr=1.0", "train.min_lr=0.1", "train.warmup_steps=4"});
  TrainerContext context;
  context.run_dir = RunDir(runs_ / "lr");
  Trainer trainer(cfg.build_method(3), cfg.train, context);
  EXPECT_DOUBLE_EQ(trainer.lr_at(0, 104), 0.25);
  EXPECT_DOUBLE_EQ(trainer.lr_at(3, 104), 1.0);
  EXPECT_DOUBLE_EQ(trainer.lr_at(4, 104), 1.0);
  EXPECT_NEAR(trainer.lr_at(54, 104), 0.55, 1e-12);  // half way: the mean of lr and min_lr
  EXPECT_NEAR(trainer.lr_at(104, 104), 0.1, 1e-12);
  // Linear scaling: the rate of a batch of 256, here 16 images (min_lr as written).
  const auto scaled = config(
      runs_ / "lr_scaled",
      {"train.lr=1.0", "train.min_lr=0.01", "train.warmup_steps=4", "train.lr_scaling=linear"});
  Trainer scaled_trainer(scaled.build_method(3), scaled.train, context);
  EXPECT_DOUBLE_EQ(scaled_trainer.lr_at(3, 104), 16.0 / 256);
  EXPECT_NEAR(scaled_trainer.lr_at(104, 104), 0.01, 1e-12);
}

TEST_F(TrainerTest, WeightDecaySparesBiasesAndNormalisationWeights) {
  for (const char* optimizer : {"sgd", "adamw"}) {
    const auto cfg = config(
        runs_ / "wd", {"train.weight_decay=0.05", std::string("train.optimizer=") + optimizer});
    auto method = cfg.build_method(3);
    Trainer trainer(method, cfg.train, TrainerContext{});
    const auto& groups = trainer.optimizer().param_groups();
    ASSERT_EQ(groups.size(), 2u);
    const auto decay_of = [&](size_t g) {
      const auto& options = groups[g].options();
      return std::string(optimizer) == "sgd"
                 ? static_cast<const torch::optim::SGDOptions&>(options).weight_decay()
                 : static_cast<const torch::optim::AdamWOptions&>(options).weight_decay();
    };
    EXPECT_DOUBLE_EQ(decay_of(0), 0.05);
    EXPECT_DOUBLE_EQ(decay_of(1), 0.0);
    for (const auto& p : groups[0].params()) EXPECT_GT(p.dim(), 1);
    for (const auto& p : groups[1].params()) EXPECT_EQ(p.dim(), 1);
    EXPECT_EQ(groups[0].params().size() + groups[1].params().size(), method->parameters().size());
  }
}

TEST(DecayGroups, SpareViTClassTokenAndPositions) {
  methods::ViT vit(methods::ViTOptions().image_size(8).patch_size(4).dim(8).depth(1).heads(2));
  const auto groups = decay_groups(*vit, 0.1, 0.05);
  const auto params = vit->named_parameters();
  const auto in = [](const ParameterGroup& group, const torch::Tensor& p) {
    for (const auto& q : group.parameters)
      if (q.is_same(p)) return true;
    return false;
  };
  EXPECT_DOUBLE_EQ(groups[0].weight_decay, 0.05);
  EXPECT_TRUE(in(groups[0], params["blocks.0.attn.qkv.weight"]));
  EXPECT_TRUE(in(groups[0], params["patch_embed.proj.weight"]));
  for (const char* name : {"cls_token", "pos_embed", "norm.weight", "blocks.0.mlp.fc1.bias"})
    EXPECT_TRUE(in(groups[1], params[name])) << name;
}

TEST_F(TrainerTest, KnnOfThePretrainedEncoderRuns) {
  const auto cfg = config(runs_ / "k", {"train.epochs=1"});
  pretrain(cfg, false, "", log_);
  const auto scores = knn(cfg, EncoderSource{}, "", log_);
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_EQ(scores[0].k, 1);
  EXPECT_GE(scores[1].metrics.top1, 0.0);
  EXPECT_LE(scores[1].metrics.top1, 1.0);
  EXPECT_TRUE(fs::exists(runs_ / "k/knn.csv"));
}

}  // namespace
}  // namespace pretext::pipelines
