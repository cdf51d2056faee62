// Data-parallel training over c10d (Gloo on 127.0.0.1): the launchers' environments, the
// collectives, and N ranks computing what one process of the global batch computes.
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "base/errors.h"
#include "pipelines/checkpoint.h"
#include "pipelines/demo.h"
#include "pipelines/launch.h"
#include "pipelines/process_group.h"
#include "pipelines/run_config.h"
#include "pipelines/training_metrics.h"
#include "pipelines/world.h"
#include "tests/io/test_data.h"
#include "tests/pipelines/ranks.h"

namespace pretext::pipelines {
namespace {

namespace fs = std::filesystem;
using testing::on_ranks;
using testing::TempDir;

World world_of(const std::map<std::string, std::string>& variables) {
  return world_from([&](const char* name) -> const char* {
    const auto found = variables.find(name);
    return found == variables.end() ? nullptr : found->second.c_str();
  });
}

std::string config_error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(World, OneProcessWithoutALauncher) {
  const auto world = world_of({{"HOME", "/root"}});
  EXPECT_FALSE(world.distributed());
  EXPECT_EQ(world.rank, 0);
  EXPECT_EQ(world.launcher, "");
}

TEST(World, TorchrunAndItsAgentStore) {
  const auto world = world_of({{"RANK", "3"},
                               {"WORLD_SIZE", "8"},
                               {"LOCAL_RANK", "1"},
                               {"LOCAL_WORLD_SIZE", "2"},
                               {"MASTER_ADDR", "node07"},
                               {"MASTER_PORT", "29400"},
                               {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                               {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_EQ(world.rank, 3);
  EXPECT_EQ(world.world_size, 8);
  EXPECT_EQ(world.local_rank, 1);
  EXPECT_EQ(world.local_world_size, 2);
  EXPECT_EQ(world.master_addr, "node07");
  EXPECT_EQ(world.master_port, 29400);
  EXPECT_TRUE(world.agent_store);
  EXPECT_EQ(world.restart_count, 2);
  EXPECT_EQ(world.launcher, "torchrun");
}

TEST(World, SlurmTakesTheFirstNodeAndAPortFromTheJob) {
  const auto world = world_of({{"SLURM_PROCID", "5"},
                               {"SLURM_NTASKS", "8"},
                               {"SLURM_LOCALID", "1"},
                               {"SLURM_TASKS_PER_NODE", "4(x2)"},
                               {"SLURM_NODELIST", "gpu[03-04],cpu01"},
                               {"SLURM_JOB_ID", "123456"}});
  EXPECT_EQ(world.rank, 5);
  EXPECT_EQ(world.world_size, 8);
  EXPECT_EQ(world.local_rank, 1);
  EXPECT_EQ(world.local_world_size, 4);
  EXPECT_EQ(world.master_addr, "gpu03");
  EXPECT_EQ(world.master_port, slurm_port(123456));
  EXPECT_EQ(world.launcher, "srun");
  // MASTER_ADDR and MASTER_PORT win.
  const auto set = world_of({{"SLURM_PROCID", "0"},
                             {"SLURM_NTASKS", "2"},
                             {"SLURM_NODELIST", "a1"},
                             {"SLURM_JOB_ID", "7"},
                             {"MASTER_ADDR", "head"},
                             {"MASTER_PORT", "4000"}});
  EXPECT_EQ(set.master_addr, "head");
  EXPECT_EQ(set.master_port, 4000);
  EXPECT_EQ(first_slurm_host("n1"), "n1");
  EXPECT_EQ(first_slurm_host("n[1-4]"), "n1");
  EXPECT_EQ(first_slurm_host("node[007,009]"), "node007");
  EXPECT_EQ(first_slurm_host("a,b"), "a");
}

TEST(World, MalformedOrMissingVariablesAreNamed) {
  EXPECT_NE(config_error_of([] {
              world_of({{"RANK", "x"}, {"WORLD_SIZE", "2"}});
            }).find("RANK='x': not an integer"),
            std::string::npos);
  EXPECT_NE(config_error_of([] {
              world_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}});
            }).find("RANK=2 is not below WORLD_SIZE=2"),
            std::string::npos);
  EXPECT_NE(config_error_of([] {
              world_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}});
            }).find("MASTER_ADDR is not set"),
            std::string::npos);
  EXPECT_NE(
      config_error_of([] {
        world_of(
            {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}});
      }).find("MASTER_PORT='70000'"),
      std::string::npos);
  EXPECT_NE(config_error_of([] {
              world_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
            }).find("SLURM_NODELIST is not set"),
            std::string::npos);
}

TEST(ProcessGroup, AveragesInBucketsBroadcastsAndGathers) {
  std::vector<std::vector<torch::Tensor>> averaged(3), broadcast(3);
  std::vector<torch::Tensor> gathered(3), bf16_summed(3), bf16_gathered(3);
  const auto errors = on_ranks(3, std::chrono::seconds(20), [&](ProcessGroup& group) {
    const double r = static_cast<double>(group.rank());
    // Buckets of 64 bytes: the float tensors go in three all-reduces, the double one in its own.
    std::vector<torch::Tensor> tensors = {
        torch::full({10}, r, torch::kFloat), torch::full({3, 4}, 2 * r, torch::kFloat),
        torch::full({5}, r * r, torch::kFloat64), torch::full({20}, -r, torch::kFloat)};
    group.average(tensors, 64);
    averaged[group.rank()] = tensors;
    std::vector<torch::Tensor> state = {torch::full({4}, r + 1), torch::full({2}, r, torch::kLong)};
    group.broadcast(state);
    broadcast[group.rank()] = state;
    gathered[group.rank()] = group.all_gather(torch::full({2, 3}, r));
    // bf16, which Gloo lacks, goes as float and comes back as bf16.
    auto half = torch::full({3}, r + 0.5, torch::kBFloat16);
    group.sum({half});
    bf16_summed[group.rank()] = half;
    bf16_gathered[group.rank()] = group.all_gather(torch::full({1}, r, torch::kBFloat16));
  });
  for (const auto& e : errors) EXPECT_EQ(e, "");
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(torch::allclose(averaged[r][0], torch::full({10}, 1.0)));
    EXPECT_TRUE(torch::allclose(averaged[r][1], torch::full({3, 4}, 2.0)));
    EXPECT_TRUE(torch::allclose(averaged[r][2], torch::full({5}, 5.0 / 3, torch::kFloat64)));
    EXPECT_TRUE(torch::allclose(averaged[r][3], torch::full({20}, -1.0)));
    EXPECT_TRUE(torch::equal(broadcast[r][0], torch::full({4}, 1.0)));
    EXPECT_TRUE(torch::equal(broadcast[r][1], torch::zeros({2}, torch::kLong)));
    EXPECT_TRUE(
        torch::equal(gathered[r], torch::cat({torch::full({2, 3}, 0.0), torch::full({2, 3}, 1.0),
                                              torch::full({2, 3}, 2.0)})));
    EXPECT_TRUE(torch::equal(bf16_summed[r], torch::full({3}, 4.5, torch::kBFloat16)));
    EXPECT_TRUE(torch::equal(bf16_gathered[r], torch::arange(3, torch::kBFloat16)));
  }
}

TEST(ProcessGroup, RefusesADifferentConfigOnEveryRank) {
  const auto errors = on_ranks(2, std::chrono::seconds(20), [&](ProcessGroup& group) {
    group.check_same("config", group.rank() == 0 ? "a: 1\nb: 2\n" : "a: 1\nb: 3\n");
  });
  for (const auto& e : errors) {
    EXPECT_NE(e.find("rank 1 of 2 runs a different config than rank 0"), std::string::npos) << e;
  }
  EXPECT_NE(errors[1].find("line 2 is 'b: 2' there, 'b: 3' here"), std::string::npos) << errors[1];
  EXPECT_EQ(on_ranks(2, std::chrono::seconds(20),
                     [&](ProcessGroup& group) { group.check_same("config", "same\n"); }),
            std::vector<std::string>(2));
}

TEST(ProcessGroup, ARankThatLeavesEndsTheOthersWaitWithTheirRankAndTask) {
  const auto started = std::chrono::steady_clock::now();
  const auto errors = on_ranks(2, std::chrono::seconds(3), [&](ProcessGroup& group) {
    if (group.rank() == 1) return;  // leaves the job: its group is destroyed
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    group.doing("averaging the gradients of step 7");
    std::vector<torch::Tensor> gradient = {torch::ones({4})};
    group.average(gradient);
  });
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  EXPECT_NE(errors[0].find("rank 0 of 2: averaging the gradients of step 7: "), std::string::npos)
      << errors[0];
  EXPECT_NE(errors[0].find("run.timeout_s"), std::string::npos) << errors[0];
  EXPECT_EQ(errors[1], "");
}

TEST(ProcessGroup, AStuckRankIsNamedAtTheBarrierWithinTheTimeout) {
  // Rank 1 is alive but never arrives (a hung data read, a deadlock): rank 0's checkpoint
  // barrier names it once the timeout has passed, instead of waiting for ever.
  const auto started = std::chrono::steady_clock::now();
  const auto errors = on_ranks(2, std::chrono::seconds(2), [&](ProcessGroup& group) {
    if (group.rank() == 1) {
      std::this_thread::sleep_for(std::chrono::seconds(4));
      return;
    }
    group.doing("waiting at the checkpoint of step 3");
    group.barrier();
  });
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  EXPECT_NE(errors[0].find("rank 0 of 2: waiting at the checkpoint of step 3: "), std::string::npos)
      << errors[0];
  EXPECT_NE(errors[0].find("1 failed to pass monitoredBarrier"), std::string::npos) << errors[0];
}

// The pretext binary; what it printed and its status.
struct Outcome {
  int status;
  std::string output;
};
Outcome shell(const std::string& command) {
  Outcome outcome;
  outcome.status = testing::run_command(command, &outcome.output);
  return outcome;
}

class DataParallelRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tiles_ = new TempDir();
    generate_demo_tiles(tiles_->path(), 16, 3);  // 48 training tiles
  }
  static void TearDownTestSuite() { delete tiles_; }

  static constexpr const char* kMae =
      "model:\n  backbone: vit\n  image_size: 16\n  patch_size: 4\n  dim: 16\n  depth: 2\n"
      "  heads: 2\nmethod:\n  name: mae\n  mask_ratio: 0.75\n  decoder_dim: 16\n"
      "  decoder_depth: 1\n  decoder_heads: 2\n";

  // dir/name.yaml: MAE on a tiny ViT (or `model_and_method`), global batch 16 as `ranks` x
  // 16 / ranks. SGD, so that the weights compare to 1e-5: Adam divides by the root of each
  // gradient's running square, which turns the float-order differences of near-zero gradients
  // into whole steps.
  std::string write_config(const std::string& name, int64_t ranks, const std::string& train = "",
                           const std::string& model_and_method = kMae) {
    const std::string path = dir_ / (name + ".yaml");
    testing::write_text(path, "run:\n  dir: " + (dir_ / name) +
                                  "\n  seed: 4\n  threads: 1\n  timeout_s: 20\n"
                                  "data:\n  root: " +
                                  tiles_->path() +
                                  "\n  image_size: 16\n  split: train\n  workers: 1\n" +
                                  model_and_method +
                                  "augment:\n  size: 16\n  noise_p: 0.5\n  noise_std: 0.1\n"
                                  "train:\n  batch_size: " +
                                  std::to_string(16 / ranks) +
                                  "\n  epochs: 2\n  optimizer: sgd\n  lr: 0.05\n"
                                  "  warmup_steps: 1\n  checkpoint_every: 3\n  log_every: 1\n" +
                                  train);
    return path;
  }

  static std::vector<double> losses(const std::string& run_dir) {
    std::vector<double> out;
    for (const auto& row : read_training_rows(RunDir(run_dir).metrics())) out.push_back(row.loss);
    return out;
  }

  // The weights of a run's checkpoint, flattened in parameter order.
  torch::Tensor weights(const std::string& config) const {
    const auto run = load_run_config(config, {});
    auto method = run.build_method(3);
    load_checkpoint(RunDir(run.run.dir()).checkpoint(), *method, nullptr, torch::kCPU, nullptr);
    std::vector<torch::Tensor> flat;
    for (const auto& p : method->parameters()) flat.push_back(p.detach().flatten());
    return torch::cat(flat);
  }

  void expect_same_training(const std::string& one, const std::string& two,
                            size_t steps = 6) const {
    const auto a = losses(dir_ / one), b = losses(dir_ / two);
    ASSERT_EQ(a.size(), steps);
    ASSERT_EQ(b.size(), a.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-5 * std::abs(a[i])) << i;
    const auto wa = weights(dir_ / (one + ".yaml")), wb = weights(dir_ / (two + ".yaml"));
    EXPECT_LT((wa - wb).abs().max().item<double>(), 1e-5 * wa.abs().max().item<double>());
  }

  inline static TempDir* tiles_ = nullptr;
  TempDir dir_;
};

TEST_F(DataParallelRun, LaunchedRanksTrainAsOneProcessOfTheGlobalBatch) {
  const auto single =
      shell(std::string(PRETEXT_BINARY) + " pretrain --config " + write_config("one", 1));
  ASSERT_EQ(single.status, 0) << single.output;
  const auto launched = shell(std::string(PRETEXT_BINARY) + " launch -n 2 -- pretrain --config " +
                              write_config("two", 2));
  ASSERT_EQ(launched.status, 0) << launched.output;
  EXPECT_NE(launched.output.find("[rank 0] pretraining mae on vit in " + (dir_ / "two") +
                                 " on 2 ranks (pretext launch), global batch 16"),
            std::string::npos)
      << launched.output;
  EXPECT_NE(launched.output.find("[rank 0] gradients all-reduced per step: "), std::string::npos)
      << launched.output;
  expect_same_training("one", "two");
  // Only rank 0 writes; a resume needs the same global batch, on any number of ranks.
  EXPECT_TRUE(fs::exists(dir_ / "two/config.yaml"));
  const auto alone =
      shell(std::string(PRETEXT_BINARY) + " pretrain --resume --config " + (dir_ / "two.yaml"));
  EXPECT_EQ(alone.status, 2) << alone.output;
  EXPECT_NE(alone.output.find("'  batch_size: 8' was '  batch_size: 16'; train.batch_size "
                              "compared as ranks x batch_size"),
            std::string::npos)
      << alone.output;
}

TEST_F(DataParallelRun, TorchrunStartsTheSameRanks) {
  ASSERT_EQ(
      shell(std::string(PRETEXT_BINARY) + " pretrain --config " + write_config("one", 1)).status,
      0);
  const std::string config = write_config("two", 2);
  // The variables torchrun sets, by hand; then torchrun itself where Debian's python3-torch is.
  const std::string port = std::to_string(free_loopback_port());
  const std::string common =
      "WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " " +
      PRETEXT_BINARY + " pretrain --config " + config;
  const auto by_hand = shell("bash -c 'RANK=1 LOCAL_RANK=1 " + common +
                             " > /dev/null 2>&1 & RANK=0 LOCAL_RANK=0 " + common +
                             "; s=$?; wait; "
                             "exit $s'");
  ASSERT_EQ(by_hand.status, 0) << by_hand.output;
  expect_same_training("one", "two");
  if (!fs::exists("/usr/bin/torchrun")) GTEST_SKIP() << "no /usr/bin/torchrun";
  fs::remove_all(dir_ / "two");
  // Debian 12's torchrun (torch 1.13) fails under Python 3.11 to parse its own default "0" for
  // --redirects and --tee (Python 3.11 no longer iterates the flag 0); 1 (stdout) parses.
  const auto torchrun =
      shell("/usr/bin/torchrun --no_python --standalone --nproc_per_node 2 --redirects 1 --tee 1 " +
            std::string(PRETEXT_BINARY) + " pretrain --config " + config);
  ASSERT_EQ(torchrun.status, 0) << torchrun.output;
  expect_same_training("one", "two");
}

TEST_F(DataParallelRun, AKilledRankEndsTheJobAndOneRankResumesTheSameRun) {
  // 200 steps: long enough that rank 1 is still training when it is killed.
  const std::string longer = "  max_steps: 200\n";
  const std::string config = write_config("two", 2, longer) + " --set train.epochs=100";
  const auto started = std::chrono::steady_clock::now();
  // Kill rank 1 once rank 0 has written its first checkpoint (step 3).
  const auto killed = shell(
      "bash -c '" + std::string(PRETEXT_BINARY) + " launch -n 2 -- pretrain --config " + config +
      " & job=$!; for i in $(seq 600); do [ -f " + (dir_ / "two/checkpoint.pt") +
      " ] && break; sleep 0.1; done; for p in $(pgrep -f \"pretext pretrain --config " + config +
      "\"); do tr \"\\0\" \"\\n\" < /proc/$p/environ | grep -qx RANK=1 && kill -9 $p; done; "
      "wait $job'");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(120));
  EXPECT_EQ(killed.status, 137) << killed.output;
  EXPECT_NE(killed.output.find("launch: rank 1 was killed by signal 9"), std::string::npos)
      << killed.output;
  EXPECT_NE(killed.output.find("[rank 0] error: rank 0 of 2: "), std::string::npos)
      << killed.output;
  const std::string log = testing::read_text(dir_ / "two/run.log");
  EXPECT_NE(log.find("error: rank 0 of 2: "), std::string::npos) << log;
  // Rank 0's last complete checkpoint continues on one rank of the whole global batch, and the
  // run is the one a single process trains without interruption.
  const auto resumed = shell(std::string(PRETEXT_BINARY) + " pretrain --resume --config " + config +
                             " --set train.batch_size=16");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("written by 2 rank(s)"), std::string::npos) << resumed.output;
  ASSERT_EQ(shell(std::string(PRETEXT_BINARY) + " pretrain --config " +
                  write_config("one", 1, longer) + " --set train.epochs=100")
                .status,
            0);
  expect_same_training("one", "two", 200);
}

TEST_F(DataParallelRun, SimClrOnAResNetTakesItsFirstStepsAsOneProcess) {
  // SimCLR on a ResNet: batch norm over the global batch, negatives gathered from both ranks.
  const std::string simclr =
      "model:\n  width_multiplier: 0.125\n  small_stem: true\nmethod:\n  name: simclr\n"
      "  projection_dim: 8\n";
  ASSERT_EQ(shell(std::string(PRETEXT_BINARY) + " pretrain --config " +
                  write_config("one", 1, "", simclr))
                .status,
            0);
  const auto launched = shell(std::string(PRETEXT_BINARY) + " launch -n 2 -- pretrain --config " +
                              write_config("two", 2, "", simclr));
  ASSERT_EQ(launched.status, 0) << launched.output;
  // This tiny ResNet amplifies rounding from step 3 on: one process alone differs by percents
  // there between 1 and 2 threads. Steps 1 and 2 show what the ranks compute (local negatives or
  // batch norm over 8 images would change the first loss by far more); the method-level tests
  // compare three steps of every method in double precision.
  const auto a = losses(dir_ / "one"), b = losses(dir_ / "two");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  EXPECT_NEAR(b[0], a[0], 1e-5 * a[0]);
  EXPECT_NEAR(b[1], a[1], 1e-4 * a[1]);
  // Under bf16 autocast the gathered projections are bf16, which Gloo does not carry itself.
  const auto bf16 = shell(std::string(PRETEXT_BINARY) + " launch -n 2 -- pretrain --config " +
                          write_config("bf16", 2, "", simclr) + " --set run.precision=bf16");
  EXPECT_EQ(bf16.status, 0) << bf16.output;
}

TEST_F(DataParallelRun, WhatCannotSplitOverTheRanksIsRefused) {
  const std::string config = write_config("two", 2);
  // Three shuffle-BN sub-batches of MoCo v2 cannot be shared by two ranks.
  const auto refused =
      shell(std::string(PRETEXT_BINARY) + " launch -n 2 -- pretrain --config " +
            write_config("moco", 2, "",
                         "model:\n  width_multiplier: 0.125\n  small_stem: true\nmethod:\n"
                         "  name: moco\n  projection_dim: 8\n  shuffle_bn_splits: 3\n"));
  EXPECT_EQ(refused.status, 2) << refused.output;
  EXPECT_NE(refused.output.find("method.shuffle_bn_splits: the global batch of 16 goes through "
                                "the encoders in 3 shuffle-BN sub-batches, which must be a "
                                "multiple of the 2 ranks"),
            std::string::npos)
      << refused.output;
  const auto not_pretrain =
      shell(std::string(PRETEXT_BINARY) + " launch -n 2 knn --config " + config);
  EXPECT_EQ(not_pretrain.status, 2) << not_pretrain.output;
  EXPECT_NE(not_pretrain.output.find("launch runs `pretext pretrain ...`"), std::string::npos)
      << not_pretrain.output;
}

}  // namespace
}  // namespace pretext::pipelines
