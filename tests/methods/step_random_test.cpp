#include <sstream>

#include <gtest/gtest.h>
#include <torch/nn/module.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/types.h>

#include "methods/step_random.h"

namespace pretext::methods {
namespace {

struct Counter : torch::nn::Module {
  Counter() : count(*this, "count", 3) {}
  MirroredInt count;
};

TEST(MirroredInt, FollowsItsBufferThroughSetsLoadsAndMoves) {
  Counter counter;
  EXPECT_EQ(counter.count.get(), 3);
  counter.count.set(41);
  EXPECT_EQ(counter.count.get(), 41);
  EXPECT_EQ(counter.named_buffers()["count"].item<int64_t>(), 41);  // a checkpoint carries it

  torch::serialize::OutputArchive saved;
  counter.save(saved);
  std::ostringstream bytes;
  saved.save_to(bytes);
  Counter loaded;
  torch::serialize::InputArchive archive;
  std::istringstream in(bytes.str());
  archive.load_from(in);
  loaded.load(archive);  // replaces the buffer's contents behind the mirror's back
  EXPECT_EQ(loaded.count.get(), 41);

  // Written from outside in place, or its storage swapped (as a move to a device does).
  loaded.named_buffers()["count"].fill_(7);
  EXPECT_EQ(loaded.count.get(), 7);
  loaded.named_buffers()["count"].set_data(torch::full({1}, 9, torch::kInt64));
  EXPECT_EQ(loaded.count.get(), 9);
  loaded.count.set(10);
  EXPECT_EQ(loaded.count.get(), 10);
}

TEST(StepGenerator, DependsOnSeedAndStepOnly) {
  const auto draw = [](int64_t seed, int64_t step) {
    auto generator = step_generator(seed, step);
    return torch::rand({4}, generator);
  };
  EXPECT_TRUE(torch::equal(draw(5, 2), draw(5, 2)));
  EXPECT_FALSE(torch::equal(draw(5, 2), draw(5, 3)));
  EXPECT_FALSE(torch::equal(draw(5, 2), draw(6, 2)));
}

}  // namespace
}  // namespace pretext::methods
