// Every method on 2 data-parallel ranks (threads joined by Gloo over 127.0.0.1) computes what one
// process of the global batch computes: the loss, the gradients after averaging, the weights
// after a few steps, and the state kept across steps (MoCo's queue, DINO's centre, batch-norm
// running statistics), in double precision to 1e-9 (weights and state 1e-7) relative to the
// largest magnitude compared.
#include <chrono>
#include <functional>
#include <vector>

#include <gtest/gtest.h>
#include <torch/optim/sgd.h>
#include <torch/torch.h>

#include "methods/autoencoder.h"
#include "methods/batch_norm.h"
#include "methods/beit.h"
#include "methods/byol.h"
#include "methods/decorrelation.h"
#include "methods/dino.h"
#include "methods/ibot.h"
#include "methods/jigsaw.h"
#include "methods/moco.h"
#include "methods/resnet.h"
#include "methods/rotation.h"
#include "methods/simclr.h"
#include "methods/simmim.h"
#include "methods/simsiam.h"
#include "methods/vit.h"
#include "methods/vqvae.h"
#include "pipelines/trainer.h"
#include "tests/pipelines/ranks.h"

namespace pretext::pipelines {
namespace {

using methods::MethodImpl;
using testing::on_ranks;

constexpr int64_t kGlobalBatch = 8;
constexpr int64_t kRanks = 2;
constexpr int64_t kSteps = 3;

std::shared_ptr<methods::BackboneImpl> tiny_resnet() {
  return std::make_shared<methods::ResNetImpl>(
      methods::ResNetOptions(18).width_multiplier(0.125).small_stem(true).in_channels(3));
}

torch::Tensor flat(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> parts;
  for (const auto& t : tensors) parts.push_back(t.detach().to(torch::kFloat64).flatten());
  return torch::cat(parts);
}

torch::Tensor all_buffers(MethodImpl& method) { return flat(method.buffers()); }

// A method, the views of its global batch (two global crops, `local_views` local ones), and the
// state it keeps across steps that must agree (every buffer unless told).
struct Case {
  using Build = std::function<std::shared_ptr<MethodImpl>()>;
  using State = std::function<torch::Tensor(MethodImpl&)>;
  explicit Case(Build b, int64_t locals = 0, State s = all_buffers)
      : build(std::move(b)), local_views(locals), state(std::move(s)) {}
  Build build;
  int64_t global_views = 2, local_views;
  State state;
};

// What one replica computed.
struct Trace {
  std::vector<double> losses;  // per step, averaged over the ranks
  torch::Tensor gradients;     // of the first step, after averaging
  torch::Tensor weights;       // after the last step
  torch::Tensor state;
};

// kSteps steps of SGD on this replica's rows of `views`; `group` null: one process.
Trace train(const Case& c, MethodImpl& method, const std::vector<torch::Tensor>& views,
            ProcessGroup* group, bool sync_batch_norm = true) {
  const int64_t rows = group ? kGlobalBatch / group->size() : kGlobalBatch;
  const int64_t offset = group ? group->rank() * rows : 0;
  method.train();
  method.set_batch_slice(BatchSlice{offset, kGlobalBatch});
  if (group) method.set_group(group, sync_batch_norm);
  std::vector<torch::Tensor> mine;
  for (const auto& v : views) mine.push_back(v.narrow(0, offset, rows));
  std::vector<torch::Tensor> parameters;
  for (const auto& p : method.parameters())
    if (p.requires_grad()) parameters.push_back(p);
  torch::optim::SGD sgd(parameters, torch::optim::SGDOptions(0.05).momentum(0.9));
  TrainerOptions options;
  Trace trace;
  for (int64_t step = 1; step <= kSteps; ++step) {
    const auto out = method.step(mine);
    backward_and_step(out.loss, sgd, parameters, options, nullptr, group);
    auto loss = out.loss.detach().to(torch::kFloat64).reshape({1});
    if (group) group->average({loss});
    trace.losses.push_back(loss.item<double>());
    if (step == 1) {
      std::vector<torch::Tensor> gradients;
      for (const auto& p : parameters)
        gradients.push_back(p.grad().defined() ? p.grad() : torch::zeros_like(p));
      trace.gradients = flat(gradients);
    }
    method.after_optimizer_step(step, kSteps);
  }
  trace.weights = flat(method.parameters());
  trace.state = c.state(method);
  return trace;
}

double relative_difference(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>() / std::max(1e-12, a.abs().max().item<double>());
}

// One process of the global batch, then kRanks ranks of their shares, from the same weights.
struct Outcome {
  Trace one;
  std::vector<Trace> ranks;
};

Outcome one_and_ranks(const Case& c, bool sync_batch_norm = true) {
  torch::manual_seed(11);
  std::vector<torch::Tensor> views;
  for (int64_t v = 0; v < c.global_views + c.local_views; ++v) {
    const int64_t side = v < c.global_views ? 8 : 6;
    views.push_back(torch::randn({kGlobalBatch, 3, side, side}, torch::kFloat64));
  }
  // Every replica is built from the same seed: the same weights and method seeds. In double
  // precision: batch norm over a few rows (MoCo's sub-batches of 2) amplifies rounding from step
  // to step, which float32 would let grow past any tolerance that still tells a wrong
  // computation apart.
  std::vector<std::shared_ptr<MethodImpl>> replicas;
  for (int64_t r = 0; r <= kRanks; ++r) {
    torch::manual_seed(5);
    replicas.push_back(c.build());
    replicas.back()->to(torch::kFloat64);
  }
  Outcome outcome;
  outcome.one = train(c, *replicas[0], views, nullptr);
  outcome.ranks.resize(kRanks);
  const auto errors = on_ranks(kRanks, std::chrono::seconds(60), [&](ProcessGroup& group) {
    outcome.ranks[group.rank()] =
        train(c, *replicas[group.rank() + 1], views, &group, sync_batch_norm);
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  return outcome;
}

void expect_ranks_compute_one_process(const Case& c) {
  const auto outcome = one_and_ranks(c);
  const auto& one = outcome.one;
  for (const auto& rank : outcome.ranks) {
    ASSERT_EQ(rank.losses.size(), one.losses.size());
    for (size_t s = 0; s < one.losses.size(); ++s)
      EXPECT_NEAR(rank.losses[s], one.losses[s], 1e-10 * std::abs(one.losses[s])) << "step " << s;
    EXPECT_LT(relative_difference(one.gradients, rank.gradients), 1e-9);
    // After three steps, where batch norm over MoCo's sub-batches of two rows has amplified
    // rounding most.
    EXPECT_LT(relative_difference(one.weights, rank.weights), 1e-7);
    EXPECT_LT(relative_difference(one.state, rank.state), 1e-7);
    // The ranks agree with each other exactly: they stepped with the same averaged gradient.
    EXPECT_TRUE(torch::equal(rank.weights, outcome.ranks[0].weights));
  }
}

TEST(DataParallelMethods, SimClrTakesItsNegativesFromEveryRank) {
  expect_ranks_compute_one_process(Case([] {
    return std::make_shared<methods::SimClrImpl>(
        tiny_resnet(), methods::SimClrOptions().projection_dim(8).projection_hidden_dim(16));
  }));
}

TEST(DataParallelMethods, MocoV2SharesItsQueueAndShufflesKeysAcrossRanks) {
  // 2 x 8 keys a step into a queue of 24: the queue wraps around in the second step. Four
  // shuffle-BN sub-batches of 2, two on each rank; their running statistics stay each rank's own
  // (each sub-batch normalises by itself), so the state compared is the queue.
  expect_ranks_compute_one_process(Case(
      [] {
        return std::make_shared<methods::MocoImpl>(tiny_resnet(), tiny_resnet(),
                                                   methods::MocoOptions()
                                                       .version(2)
                                                       .queue_size(24)
                                                       .projection_dim(8)
                                                       .projection_hidden_dim(16)
                                                       .shuffle_bn_splits(4));
      },
      0,
      [](MethodImpl& m) {
        return static_cast<methods::MocoImpl&>(m).queue().to(torch::kFloat64).clone();
      }));
}

TEST(DataParallelMethods, MocoV3TakesEveryRanksKeys) {
  expect_ranks_compute_one_process(Case([] {
    return std::make_shared<methods::MocoImpl>(tiny_resnet(), tiny_resnet(),
                                               methods::MocoOptions()
                                                   .version(3)
                                                   .projection_dim(8)
                                                   .projection_hidden_dim(16)
                                                   .predictor_hidden_dim(16));
  }));
}

TEST(DataParallelMethods, ByolNormalisesOverTheGlobalBatch) {
  expect_ranks_compute_one_process(Case([] {
    return std::make_shared<methods::ByolImpl>(
        tiny_resnet(), tiny_resnet(),
        methods::ByolOptions().projection_dim(8).projection_hidden_dim(16).predictor_hidden_dim(
            16));
  }));
}

TEST(DataParallelMethods, SimSiamNormalisesOverTheGlobalBatch) {
  expect_ranks_compute_one_process(Case([] {
    return std::make_shared<methods::SimSiamImpl>(
        tiny_resnet(),
        methods::SimSiamOptions().projection_dim(8).projection_hidden_dim(16).predictor_hidden_dim(
            16));
  }));
}

TEST(DataParallelMethods, BarlowTwinsAndVicRegCorrelateTheGlobalBatch) {
  expect_ranks_compute_one_process(Case([] {
    return std::make_shared<methods::BarlowTwinsImpl>(
        tiny_resnet(), methods::BarlowTwinsOptions().projection_dim(8).projection_hidden_dim(16));
  }));
  expect_ranks_compute_one_process(Case([] {
    return std::make_shared<methods::VicRegImpl>(
        tiny_resnet(), methods::VicRegOptions().projection_dim(8).projection_hidden_dim(16));
  }));
}

TEST(DataParallelMethods, PretextTasksAndSimMimDrawForTheGlobalBatch) {
  // One view each; the autoencoder's noise and hidden blocks, the jigsaw's orders and offsets and
  // SimMIM's masks are drawn for the global batch, each rank taking its rows.
  const auto one_view = [](Case::Build build) {
    Case c(std::move(build));
    c.global_views = 1;
    return c;
  };
  expect_ranks_compute_one_process(one_view([] {
    return std::make_shared<methods::AutoencoderImpl>(tiny_resnet(), methods::AutoencoderOptions()
                                                                         .decoder_channels(8)
                                                                         .decoder_grid(2)
                                                                         .decoder_stages(2)
                                                                         .noise_std(0.3)
                                                                         .mask_ratio(0.3)
                                                                         .mask_patch(2));
  }));
  expect_ranks_compute_one_process(one_view([] {
    return std::make_shared<methods::RotationImpl>(tiny_resnet(),
                                                   methods::RotationOptions().head_hidden_dim(8));
  }));
  expect_ranks_compute_one_process(one_view([] {
    return std::make_shared<methods::JigsawImpl>(
        tiny_resnet(),
        methods::JigsawOptions().grid(2).permutations(24).tile_dim(8).hidden_dim(16));
  }));
  // SimMIM's block masks, drawn for the global batch, on a ViT of the test's 8-pixel views.
  expect_ranks_compute_one_process(one_view([] {
    return std::make_shared<methods::SimMimImpl>(
        std::make_shared<methods::ViTImpl>(
            methods::ViTOptions().image_size(8).patch_size(2).in_channels(3).dim(16).depth(1).heads(
                2)),
        methods::SimMimOptions().mask_patch_size(4));
  }));
}

TEST(DataParallelMethods, VqVaeAndBeitTakeTheGlobalBatch) {
  // BEiT's block masks hide unequal counts per image, so each rank's share of the masked
  // patches differs: the loss is each rank's sum over the global count.
  const auto vit = [] {
    return std::make_shared<methods::ViTImpl>(
        methods::ViTOptions().image_size(8).patch_size(2).in_channels(3).dim(16).depth(1).heads(2));
  };
  const auto tokenizer = [vit] {
    return std::make_shared<methods::VqVaeImpl>(
        vit(),
        methods::VqVaeOptions().codebook_size(16).code_dim(4).decoder_dim(8).decoder_depth(1));
  };
  for (const auto& build : std::vector<Case::Build>{
           tokenizer,
           [vit, tokenizer] {
             return std::make_shared<methods::BeitImpl>(vit(), tokenizer(),
                                                        methods::BeitOptions().tokenizer("t.pt"));
           },
       }) {
    Case c(build);
    c.global_views = 1;
    expect_ranks_compute_one_process(c);
  }
}

TEST(DataParallelMethods, DinoCentresOnTheGlobalBatch) {
  // Two global and two local crops; batch norm in the head too. The state: the centre and every
  // running statistic.
  expect_ranks_compute_one_process(Case(
      [] {
        return std::make_shared<methods::DinoImpl>(tiny_resnet(), tiny_resnet(),
                                                   methods::DinoOptions()
                                                       .out_dim(32)
                                                       .hidden_dim(16)
                                                       .bottleneck_dim(8)
                                                       .use_bn(true)
                                                       .local_crops(2));
      },
      2));
}

TEST(DataParallelMethods, DinoV2sSinkhornKnoppAndKoLeoTakeTheGlobalBatch) {
  // Sinkhorn-Knopp's prototype sums over every rank's teacher outputs; KoLeo's nearest
  // neighbours among the global batch's student features.
  expect_ranks_compute_one_process(Case([] {
    return std::make_shared<methods::DinoImpl>(tiny_resnet(), tiny_resnet(),
                                               methods::DinoOptions()
                                                   .out_dim(32)
                                                   .hidden_dim(16)
                                                   .bottleneck_dim(8)
                                                   .local_crops(0)
                                                   .centering("sinkhorn_knopp")
                                                   .koleo_weight(0.1));
  }));
}

TEST(DataParallelMethods, IbotMasksAndCentresTakeTheGlobalBatch) {
  // Block masks drawn for the global batch, both centres over it; with Sinkhorn-Knopp the
  // masked patches of every rank (their counts differ) share the normalisation.
  const auto vit = [] {
    return std::make_shared<methods::ViTImpl>(
        methods::ViTOptions().image_size(8).patch_size(2).in_channels(3).dim(16).depth(1).heads(2));
  };
  for (const char* centering : {"centre", "sinkhorn_knopp"})
    expect_ranks_compute_one_process(Case([&] {
      methods::IbotOptions options;
      options.dino().out_dim(32).hidden_dim(16).bottleneck_dim(8).local_crops(0).centering(
          centering);
      return std::make_shared<methods::IbotImpl>(vit(), vit(),
                                                 options.patch_out_dim(32).masked_images(0.7));
    }));
}

TEST(DataParallelMethods, WithoutSyncBatchNormOnlyTheStatisticsDiffer) {
  // Each rank normalises by its own 4 images: the ranks still agree with each other (averaged
  // gradients), but no longer with one process of 8, from the first loss on.
  const auto outcome = one_and_ranks(Case([] {
                                       return std::make_shared<methods::SimSiamImpl>(
                                           tiny_resnet(), methods::SimSiamOptions()
                                                              .projection_dim(8)
                                                              .projection_hidden_dim(16)
                                                              .predictor_hidden_dim(16));
                                     }),
                                     /*sync_batch_norm=*/false);
  EXPECT_TRUE(torch::equal(outcome.ranks[0].weights, outcome.ranks[1].weights));
  EXPECT_GT(std::abs(outcome.ranks[0].losses[0] - outcome.one.losses[0]),
            1e-3 * std::abs(outcome.one.losses[0]));
}

TEST(DataParallelMethods, SyncBatchNormMatchesTorchsBatchNormOfTheGlobalBatch) {
  // Forward, backward through the statistics, and running statistics of a [8, 3, 4, 4] batch
  // on two ranks of 4, against torch::nn::BatchNorm2d on all 8.
  torch::manual_seed(3);
  const auto x = torch::randn({8, 3, 4, 4}) * 3 + 1;
  const auto weights = torch::randn({8, 3, 4, 4});  // the loss: sum(weights * y)
  torch::nn::BatchNorm2d reference(3);
  auto input = x.clone().requires_grad_(true);
  const auto expected = reference(input);
  (expected * weights).sum().backward();
  std::vector<torch::Tensor> outputs(2), gradients(2), means(2), variances(2);
  const auto errors = on_ranks(2, std::chrono::seconds(30), [&](ProcessGroup& group) {
    methods::BatchNorm norm(methods::BatchNormOptions(3));
    norm->set_group(&group);
    const int64_t r = group.rank();
    auto mine = x.narrow(0, 4 * r, 4).clone().requires_grad_(true);
    const auto y = norm(mine);
    (y * weights.narrow(0, 4 * r, 4)).sum().backward();
    outputs[r] = y.detach();
    gradients[r] = mine.grad();
    means[r] = norm->running_mean.clone();
    variances[r] = norm->running_var.clone();
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  EXPECT_TRUE(torch::allclose(torch::cat(outputs), expected.detach(), 1e-4, 1e-5));
  EXPECT_TRUE(torch::allclose(torch::cat(gradients), input.grad(), 1e-4, 1e-5));
  for (int64_t r = 0; r < 2; ++r) {
    EXPECT_TRUE(torch::allclose(means[r], reference->running_mean, 1e-4, 1e-6));
    EXPECT_TRUE(torch::allclose(variances[r], reference->running_var, 1e-4, 1e-6));
  }
}

}  // namespace
}  // namespace pretext::pipelines
