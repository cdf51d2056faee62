#include "methods/jigsaw.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <torch/nn/functional.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/linear.h>

#include "base/device.h"
#include "methods/losses.h"

namespace pretext::methods {
namespace F = torch::nn::functional;
namespace nn = torch::nn;

namespace {

int64_t factorial(int64_t n) { return n <= 1 ? 1 : n * factorial(n - 1); }

}  // namespace

void JigsawOptions::visit_fields(FieldVisitor& visit) {
  visit("grid", grid_, Check::between(2, 3));
  visit("permutations", permutations_, Check::between(2, 10000));
  visit("tile_fraction", tile_fraction_, Check::between(0.1, 1));
  visit("tile_dim", tile_dim_, Check::between(1, 1 << 16));
  visit("hidden_dim", hidden_dim_, Check::between(1, 1 << 16));
  visit("normalise_tiles", normalise_tiles_);
}

std::optional<std::pair<std::string, std::string>> JigsawOptions::mismatch(
    const std::string& backbone) const {
  if (backbone == "vit")
    return {{"name",
             "jigsaw needs a backbone that takes any image size (resnet18, resnet34, resnet50): "
             "it encodes tiles of a fraction of the image in training and whole images in "
             "evaluation, and the vit takes one size"}};
  if (permutations_ > factorial(grid_ * grid_))
    return {{"permutations", std::to_string(permutations_) + " orders of " +
                                 std::to_string(grid_ * grid_) + " tiles, which have only " +
                                 std::to_string(factorial(grid_ * grid_))}};
  return std::nullopt;
}

torch::Tensor maximal_hamming_permutations(int64_t tiles, int64_t count) {
  TORCH_CHECK(tiles >= 1 && tiles <= 9 && count >= 1 && count <= factorial(tiles),
              "maximal_hamming_permutations: ", count, " orders of ", tiles, " tiles");
  // Every order, lexicographic from the identity, as bytes.
  std::vector<uint8_t> order(static_cast<size_t>(tiles)), all;
  std::iota(order.begin(), order.end(), 0);
  do {
    all.insert(all.end(), order.begin(), order.end());
  } while (std::next_permutation(order.begin(), order.end()));
  const auto candidates = static_cast<int64_t>(all.size()) / tiles;
  // The summed Hamming distance of each candidate to the chosen orders; the mean's argmax.
  std::vector<int64_t> distance(static_cast<size_t>(candidates), 0);
  std::vector<bool> taken(static_cast<size_t>(candidates), false);
  auto chosen = torch::empty({count, tiles}, torch::kInt64);
  int64_t next = 0;  // the identity first
  for (int64_t c = 0; c < count; ++c) {
    taken[next] = true;
    const uint8_t* pick = &all[static_cast<size_t>(next * tiles)];
    for (int64_t j = 0; j < tiles; ++j) chosen[c][j] = pick[j];
    int64_t best = -1;
    for (int64_t i = 0; i < candidates; ++i) {
      const uint8_t* other = &all[static_cast<size_t>(i * tiles)];
      for (int64_t j = 0; j < tiles; ++j) distance[i] += other[j] != pick[j];
      if (!taken[i] && (best < 0 || distance[i] > distance[best])) best = i;
    }
    next = best;
  }
  return chosen;
}

JigsawImpl::JigsawImpl(std::shared_ptr<BackboneImpl> backbone, const JigsawOptions& options)
    : backbone_(std::move(backbone)), options_(options) {
  register_module("backbone", backbone_);
  const int64_t tiles = options_.grid() * options_.grid();
  permutations_ = maximal_hamming_permutations(tiles, options_.permutations());
  tile_head_ = register_module(
      "tile_head",
      nn::Sequential(nn::Linear(backbone_->feature_dim(), options_.tile_dim()), nn::ReLU(true)));
  head_ = register_module(
      "head",
      nn::Sequential(nn::Linear(tiles * options_.tile_dim(), options_.hidden_dim()), nn::ReLU(true),
                     nn::Linear(options_.hidden_dim(), options_.permutations())));
  draws_ = StepDraws(*this, "puzzle_seed");
}

std::pair<torch::Tensor, torch::Tensor> JigsawImpl::puzzles(const torch::Tensor& images,
                                                            const at::Generator& generator) const {
  const int64_t batch = images.size(0), bands = images.size(1), side = images.size(2);
  const int64_t grid = options_.grid(), tiles = grid * grid, cell = side / grid;
  TORCH_CHECK(images.dim() == 4 && images.size(3) == side && cell >= 1,
              "jigsaw takes square images of at least ", grid, " pixels, got ", images.sizes());
  const int64_t tile = std::clamp<int64_t>(
      std::llround(static_cast<double>(cell) * options_.tile_fraction()), 1, cell);
  // Per image: its order, then each tile's row and column offset in its cell.
  const auto u = uniform_rows(generator, batch_slice(), batch, {1 + 2 * tiles});
  const int64_t orders = permutations_.size(0);
  const auto order = (u.select(1, 0) * orders).to(torch::kInt64).clamp_max(orders - 1);
  const auto offsets = (u.slice(1, 1) * (cell - tile + 1))
                           .to(torch::kInt64)
                           .clamp_max(cell - tile)
                           .view({batch, 2, tiles});
  const auto number = torch::arange(tiles, torch::kInt64);
  const auto top = number.div(grid, "floor") * cell + offsets.select(1, 0);  // [B, tiles]
  const auto left = number.remainder(grid) * cell + offsets.select(1, 1);
  // Position j of the puzzle shows tile permutations[order][j].
  const auto shown = permutations_.index_select(0, order);
  const auto pixels = torch::arange(tile, torch::kInt64);
  const auto device = images.device();
  const auto rows = to_device(top.gather(1, shown).unsqueeze(-1) + pixels, device);
  const auto columns = to_device(left.gather(1, shown).unsqueeze(-1) + pixels, device);
  auto x = images.unsqueeze(1).expand({batch, tiles, bands, side, side});
  x = x.gather(3, rows.view({batch, tiles, 1, tile, 1}).expand({batch, tiles, bands, tile, side}));
  x = x.gather(4,
               columns.view({batch, tiles, 1, 1, tile}).expand({batch, tiles, bands, tile, tile}));
  if (options_.normalise_tiles()) {
    // As the reference's per-tile Normalize, with the spread at least 0.01 (normalised units),
    // so that a flat tile is not noise blown up.
    const auto mean = x.mean({3, 4}, /*keepdim=*/true);
    const auto spread = x.std({3, 4}, /*unbiased=*/false, /*keepdim=*/true).clamp_min(1e-2);
    x = (x - mean) / spread;
  }
  return {x, to_device(order, device)};
}

StepOutput JigsawImpl::step(const std::vector<torch::Tensor>& views) {
  TORCH_CHECK(!views.empty(), "jigsaw takes 1 view, got none");
  const auto [tiles, order] = puzzles(views[0], draws_.generator());
  const int64_t batch = tiles.size(0), count = tiles.size(1);
  const auto features =
      backbone_->forward(tiles.flatten(0, 1).contiguous(torch::MemoryFormat::ChannelsLast));
  const auto logits = head_->forward(tile_head_->forward(features).view({batch, -1}));
  StepOutput out;
  out.loss = F::cross_entropy(logits, order);
  out.logs["accuracy"] = logits.detach().argmax(1).eq(order).to(torch::kFloat32).mean();
  out.logs["embedding_std"] = embedding_std(features.detach().view({batch, count, -1}).mean(1));
  return out;
}

}  // namespace pretext::methods
