#include "methods/vit.h"

#include <cmath>

#include <torch/nn/functional.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/container/modulelist.h>

#include "base/errors.h"
#include "base/torch_compat.h"

namespace pretext::methods {
namespace F = torch::nn::functional;

void ViTOptions::visit_fields(FieldVisitor& visit) {
  visit("image_size", image_size_, Check::between(1, 4096));
  visit("patch_size", patch_size_, Check::between(1, 512));
  visit("dim", dim_, Check::between(4, 16384));
  visit("depth", depth_, Check::between(1, 256));
  visit("heads", heads_, Check::between(1, 256));
  visit("mlp_ratio", mlp_ratio_, Check::above(0));
  visit("class_token", class_token_);
  visit("position_embedding", position_embedding_, Check::one_of({"learned", "sincos"}));
  visit("pool", pool_, Check::one_of({"cls", "mean"}));
  visit("band_groups", band_groups_, Check::between(1, 4096));
  visit("layer_scale_init", layer_scale_init_, Check::at_least(0));
}

std::vector<int64_t> ViTOptions::groups() const {
  return band_groups_.empty() ? std::vector<int64_t>{in_channels_} : band_groups_;
}

std::optional<std::pair<std::string, std::string>> ViTOptions::mismatch() const {
  const auto n = [](int64_t v) { return std::to_string(v); };
  if (image_size_ % patch_size_ != 0)
    return {{"image_size", n(image_size_) + " is not a multiple of patch_size " + n(patch_size_)}};
  if (dim_ % heads_ != 0) return {{"dim", n(dim_) + " is not a multiple of heads " + n(heads_)}};
  if (position_embedding_ == "sincos" && dim_ % 4 != 0)
    return {{"dim", n(dim_) + " is not a multiple of 4, as sincos positions need"}};
  if (pool_ == "cls" && !class_token_) return {{"pool", "cls needs class_token: true"}};
  if (band_groups_.size() > 1 && dim_ % 2 != 0)
    return {{"dim", n(dim_) + " is odd; band group encodings need an even dim"}};
  return std::nullopt;
}

namespace {

/// MAE's initialisation: Xavier-uniform linear weights, zero biases.
torch::nn::Linear linear(int64_t in, int64_t out) {
  torch::nn::Linear layer(in, out);
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(layer->weight);
  layer->bias.zero_();
  return layer;
}

torch::nn::LayerNorm layer_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6));  // timm's eps
}

}  // namespace

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads)
    : heads_(heads),
      qkv_(register_module("qkv", linear(dim, 3 * dim))),
      proj_(register_module("proj", linear(dim, dim))) {}

torch::Tensor AttentionImpl::forward(const torch::Tensor& tokens, torch::Tensor* weights) {
  const int64_t batch = tokens.size(0), count = tokens.size(1), dim = tokens.size(2);
  const int64_t head_dim = dim / heads_;
  // [3, B, heads, N, head_dim]
  const auto qkv =
      qkv_(tokens).reshape({batch, count, 3, heads_, head_dim}).permute({2, 0, 3, 1, 4});
  const auto mixed = compat::attention(qkv[0], qkv[1], qkv[2], weights);
  return proj_(mixed.transpose(1, 2).reshape({batch, count, dim}));
}

BlockImpl::BlockImpl(int64_t dim, int64_t heads, int64_t hidden, double layer_scale_init)
    : norm1_(register_module("norm1", layer_norm(dim))),
      norm2_(register_module("norm2", layer_norm(dim))),
      attn_(register_module("attn", Attention(dim, heads))) {
  // timm's Mlp: a submodule "mlp" holding fc1 and fc2.
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>());
  fc1_ = mlp->register_module("fc1", linear(dim, hidden));
  fc2_ = mlp->register_module("fc2", linear(hidden, dim));
  if (layer_scale_init > 0) {
    // timm's and DINOv2's LayerScale: a submodule holding "gamma".
    const auto gamma = [&](const char* name) {
      return register_module(name, std::make_shared<torch::nn::Module>())
          ->register_parameter("gamma", torch::full({dim}, layer_scale_init));
    };
    gamma1_ = gamma("ls1");
    gamma2_ = gamma("ls2");
  }
}

torch::Tensor BlockImpl::forward(const torch::Tensor& tokens, torch::Tensor* weights) {
  const auto scaled = [](const torch::Tensor& branch, const torch::Tensor& gamma) {
    return gamma.defined() ? branch * gamma : branch;
  };
  const auto x = tokens + scaled(attn_(norm1_(tokens), weights), gamma1_);
  return x + scaled(fc2_(F::gelu(fc1_(norm2_(x)))), gamma2_);
}

std::vector<Block> register_blocks(torch::nn::Module& owner, const std::string& name, int64_t count,
                                   int64_t dim, int64_t heads, int64_t hidden,
                                   double layer_scale_init) {
  auto list = owner.register_module(name, torch::nn::ModuleList());
  std::vector<Block> blocks;
  for (int64_t i = 0; i < count; ++i) {
    blocks.push_back(Block(dim, heads, hidden, layer_scale_init));
    list->push_back(blocks.back());
  }
  return blocks;
}

torch::Tensor sincos_encoding(const torch::Tensor& positions, int64_t dim) {
  const auto options = positions.options().dtype(torch::kFloat64);
  const int64_t half = dim / 2;
  const auto omega = 1.0 / torch::pow(10000.0, torch::arange(half, options) / half);
  const auto angles = positions.to(torch::kFloat64).unsqueeze(-1) * omega;
  return torch::cat({angles.sin(), angles.cos()}, -1).to(torch::kFloat32);
}

torch::Tensor sincos_position_embedding(int64_t dim, int64_t grid) {
  const auto positions = torch::arange(grid, torch::kFloat64);
  // Token r * grid + c: the first half encodes the column c, the second the row r (MAE's order).
  return torch::cat({sincos_encoding(positions.repeat({grid}), dim / 2),
                     sincos_encoding(positions.repeat_interleave(grid), dim / 2)},
                    1);
}

ViTImpl::ViTImpl(const ViTOptions& options) : options_(options) {
  if (const auto bad = options_.mismatch()) throw ConfigError("model", bad->first, bad->second);
  const int64_t dim = options_.dim(), patch = options_.patch_size();
  groups_ = options_.groups();
  int64_t bands = 0;
  for (const auto size : groups_) bands += size;
  if (bands != options_.in_channels())
    throw ConfigError("model", "band_groups",
                      "the groups hold " + std::to_string(bands) + " bands, the data has " +
                          std::to_string(options_.in_channels()));
  torch::NoGradGuard no_grad;
  // timm's patch_embed.proj for one group; patch_embed.<g>.proj for band groups.
  auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>());
  for (size_t g = 0; g < groups_.size(); ++g) {
    auto holder = groups_.size() == 1
                      ? patch_embed
                      : patch_embed->register_module(std::to_string(g),
                                                     std::make_shared<torch::nn::Module>());
    patch_embeds_.push_back(holder->register_module(
        "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(groups_[g], dim, patch).stride(patch))));
    // Xavier-uniform as for a linear layer on the flattened patch (MAE).
    torch::nn::init::xavier_uniform_(patch_embeds_.back()->weight.view({dim, -1}));
    patch_embeds_.back()->bias.zero_();
  }
  if (groups_.size() > 1)  // fixed, like SatMAE's channel encoding
    group_embed_ = register_parameter(
        "group_embed",
        sincos_encoding(torch::arange(static_cast<int64_t>(groups_.size())), dim).unsqueeze(1),
        /*requires_grad=*/false);
  const int64_t prefix = options_.class_token() ? 1 : 0;
  if (options_.class_token())
    cls_token_ = register_parameter("cls_token", torch::randn({1, 1, dim}) * 0.02);
  const int64_t tokens = prefix + options_.grid() * options_.grid();
  if (options_.position_embedding() == "learned") {
    pos_embed_ = register_parameter("pos_embed", torch::randn({1, tokens, dim}) * 0.02);
  } else {
    // A parameter that does not train, so that it is saved and exported like timm's.
    auto fixed = torch::zeros({1, tokens, dim});
    fixed.slice(1, prefix).copy_(sincos_position_embedding(dim, options_.grid()).unsqueeze(0));
    pos_embed_ = register_parameter("pos_embed", fixed, /*requires_grad=*/false);
  }
  blocks_ = register_blocks(*this, "blocks", options_.depth(), dim, options_.heads(),
                            std::llround(options_.mlp_ratio() * dim), options_.layer_scale_init());
  norm_ = register_module(options_.pool() == "cls" ? "norm" : "fc_norm", layer_norm(dim));
}

int64_t ViTImpl::layer_of(const std::string& parameter_name) const {
  // "blocks.3.attn.qkv.weight" -> 4; embeddings -> 0; norm / fc_norm -> with the head.
  if (parameter_name.rfind("blocks.", 0) == 0) return std::stoll(parameter_name.substr(7)) + 1;
  if (parameter_name.rfind("norm", 0) == 0 || parameter_name.rfind("fc_norm", 0) == 0)
    return layer_count();
  return 0;
}

torch::Tensor ViTImpl::tokens(const torch::Tensor& images, torch::Tensor* attention) {
  const auto patches = patch_tokens(images);
  return run_blocks(torch::cat({prefix_tokens(images.size(0)), patches}, 1), attention);
}

torch::Tensor ViTImpl::patch_tokens(const torch::Tensor& images, const torch::Tensor& mask,
                                    const torch::Tensor& mask_token) {
  const int64_t patch = options_.patch_size();
  TORCH_CHECK(images.size(2) == images.size(3) && images.size(2) % patch == 0, "ViT with patch ",
              patch, " takes square images of a multiple of ", patch, " pixels, got ",
              images.size(2), "x", images.size(3));
  auto positions = pos_embed_.slice(1, prefix_count());
  const int64_t grid = images.size(2) / patch;
  // Other sizes (DINO's local crops) get the position grid resampled.
  if (grid != options_.grid()) positions = resample_positions(positions, grid);
  TORCH_CHECK(images.size(1) == options_.in_channels(), "ViT takes ", options_.in_channels(),
              " bands, got ", images.size(1));
  std::vector<torch::Tensor> tokens;
  int64_t first = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    auto x = patch_embeds_[g](images.narrow(1, first, groups_[g])).flatten(2).transpose(1, 2);
    if (mask.defined()) {
      // As SimMIM's x * (1 - w) + mask_token * w.
      const auto w = mask.unsqueeze(-1).to(x.scalar_type());
      x = x * (1 - w) + mask_token * w;
    }
    tokens.push_back(x + (group_embed_.defined() ? positions + group_embed_[g] : positions));
    first += groups_[g];
  }
  return tokens.size() == 1 ? tokens[0] : torch::cat(tokens, 1);
}

torch::Tensor resample_positions(const torch::Tensor& positions, int64_t grid) {
  const int64_t dim = positions.size(2);
  const auto from = static_cast<int64_t>(std::llround(std::sqrt(positions.size(1))));
  TORCH_CHECK(positions.dim() == 3 && from * from == positions.size(1),
              "resample_positions: ", positions.sizes(), " is not a square grid");
  const double scale = (static_cast<double>(grid) + 0.1) / static_cast<double>(from);
  return F::interpolate(positions.reshape({1, from, from, dim}).permute({0, 3, 1, 2}),
                        F::InterpolateFuncOptions()
                            .scale_factor(std::vector<double>{scale, scale})
                            .recompute_scale_factor(false)
                            .mode(torch::kBicubic)
                            .align_corners(false))
      .permute({0, 2, 3, 1})
      .reshape({1, grid * grid, dim});
}

torch::Tensor ViTImpl::fitted(const std::string& name, const torch::Tensor& saved) const {
  const int64_t prefix = prefix_count();
  if (name != "pos_embed" || saved.dim() != 3 || saved.size(0) != 1 ||
      saved.size(2) != options_.dim() || saved.size(1) <= prefix)
    return {};
  const auto grid_tokens = saved.size(1) - prefix;
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(grid_tokens)));
  if (side * side != grid_tokens) return {};
  return torch::cat({saved.slice(1, 0, prefix),
                     resample_positions(saved.slice(1, prefix).to(torch::kFloat32), options_.grid())
                         .to(saved.scalar_type())},
                    1);
}

torch::Tensor ViTImpl::prefix_tokens(int64_t batch) {
  if (!options_.class_token())
    return torch::zeros({batch, 0, options_.dim()}, pos_embed_.options());
  return (cls_token_ + pos_embed_.slice(1, 0, 1)).expand({batch, -1, -1});
}

torch::Tensor ViTImpl::run_blocks(torch::Tensor tokens, torch::Tensor* attention) {
  for (size_t i = 0; i < blocks_.size(); ++i)
    tokens = blocks_[i]->forward(tokens, i + 1 == blocks_.size() ? attention : nullptr);
  return tokens;
}

torch::Tensor ViTImpl::final_tokens(const torch::Tensor& images, const torch::Tensor& mask,
                                    const torch::Tensor& mask_token) {
  const auto patches = patch_tokens(images, mask, mask_token);
  return norm_(run_blocks(torch::cat({prefix_tokens(images.size(0)), patches}, 1)));
}

torch::Tensor ViTImpl::forward(const torch::Tensor& images) {
  const auto x = tokens(images);
  if (options_.pool() == "cls") return norm_(x.select(1, 0));
  return norm_(x.slice(1, options_.class_token() ? 1 : 0).mean(1));
}

torch::Tensor ViTImpl::attention_map(const torch::Tensor& images) {
  torch::Tensor attention;
  tokens(images, &attention);
  const auto mean = attention.mean(1);  // [B, N, N], over heads
  const auto to_patches = options_.class_token() ? mean.select(1, 0).slice(1, 1) : mean.mean(1);
  const auto groups = static_cast<int64_t>(groups_.size());
  return to_patches.reshape({images.size(0), groups, options_.grid(), options_.grid()}).mean(1);
}

}  // namespace pretext::methods
