#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/arg.h>
#include <torch/nn/modules/container/sequential.h>

#include "base/fields.h"
#include "methods/method.h"
#include "methods/step_random.h"

namespace pretext::methods {

/// Jigsaw puzzles (Noroozi & Favaro 2016): each image cut into a grid of tiles, the tiles shuffled
/// by one of a fixed set of orders, each tile through the shared encoder, and the order named
/// from the tiles' features concatenated in the shuffled order. Each tile is smaller than its
/// cell and placed at random in it, and normalised by its own mean and spread per band, as the
/// reference, so that edges, borders and colour do not give the order away.
///   Jigsaw jigsaw(backbone, JigsawOptions().grid(3).permutations(100));
struct JigsawOptions {
  /// Tiles per side (2: 24 possible orders, 3: the paper's 3x3, 362,880 orders).
  TORCH_ARG(int64_t, grid) = 3;
  /// The orders told apart, chosen from all of them as the reference's maximal-Hamming selection
  /// (the paper's best set had 1,000; 100 is the common choice of reimplementations).
  TORCH_ARG(int64_t, permutations) = 100;
  /// Side of a tile as a fraction of its cell's (the paper's 64 of 75 pixels).
  TORCH_ARG(double, tile_fraction) = 0.85;
  /// The head: each tile's features to tile_dim (Linear, ReLU), the tiles' concatenated in the
  /// shuffled order to hidden_dim (Linear, ReLU), then a Linear to the orders (the reference's
  /// fc6, fc7, fc8 at 1024, 4096 and the orders, without its dropout).
  TORCH_ARG(int64_t, tile_dim) = 512;
  TORCH_ARG(int64_t, hidden_dim) = 1024;
  /// Normalise each tile by its own mean and standard deviation per band.
  TORCH_ARG(bool, normalise_tiles) = true;

 public:
  void visit_fields(FieldVisitor& visit);
  /// The first field that does not fit the others or the backbone, as {key, reason}.
  std::optional<std::pair<std::string, std::string>> mismatch(const std::string& backbone) const;
};

/// The reference's selection of `count` orders of `tiles` tiles (select_permutations.py with
/// 'max'): starting from the identity, each next order is the one whose mean Hamming distance to
/// the orders chosen so far is the largest (the first of equals in lexicographic order).
/// [count, tiles] int64; tiles! >= count, tiles <= 9.
torch::Tensor maximal_hamming_permutations(int64_t tiles, int64_t count);

class JigsawImpl : public MethodImpl {
 public:
  /// Options as the registry checked them (mismatch).
  JigsawImpl(std::shared_ptr<BackboneImpl> backbone, const JigsawOptions& options);
  /// One view; the loss is the cross-entropy of each image's order.
  StepOutput step(const std::vector<torch::Tensor>& views) override;
  int64_t view_count() const override { return 1; }
  void after_optimizer_step(int64_t step, int64_t /*total_steps*/) override {
    draws_.set_step(step);
  }
  std::shared_ptr<BackboneImpl> encoder() override { return backbone_; }

  /// The puzzles of `images` [B, C, S, S] with orders and tile offsets drawn from `generator`
  /// (for the global batch, batch_slice()): tiles [B, grid^2, C, t, t] in shuffled order (position
  /// j holds tile permutations[order][j], tiles numbered row-major) and each image's order [B].
  std::pair<torch::Tensor, torch::Tensor> puzzles(const torch::Tensor& images,
                                                  const at::Generator& generator) const;
  const torch::Tensor& permutations() const { return permutations_; }

 private:
  std::shared_ptr<BackboneImpl> backbone_;
  JigsawOptions options_;
  torch::Tensor permutations_;  // [orders, tiles] on the CPU, fixed by the options
  torch::nn::Sequential tile_head_{nullptr}, head_{nullptr};
  StepDraws draws_;  // the orders and offsets of each step
};
TORCH_MODULE(Jigsaw);

}  // namespace pretext::methods
