#include "pipelines/figures.h"

#include <filesystem>
#include <string>
#include <vector>

#include <torch/nn/functional.h>
#include <torch/types.h>

#include <nlohmann/json.hpp>

#include "domains/augment.h"
#include "io/gdal_raster.h"
#include "methods/vit.h"
#include "pipelines/checkpoint.h"
#include "pipelines/encoder_source.h"
#include "pipelines/results.h"
#include "pipelines/run_dir.h"

namespace pretext::pipelines {
namespace {

void write_png(const std::string& path, const torch::Tensor& unit) {
  write_file(path, io::encode_png(unit.clamp(0, 1) * 255));
}

/// Rows of `count` images [count, bands, size, size] in [0, 1] tiled with 2-pixel gaps into one
/// image written to `path`; returns its display width (small images drawn larger).
int64_t write_grid(const std::string& path, const std::vector<torch::Tensor>& rows) {
  const int64_t count = rows[0].size(0), bands = rows[0].size(1), size = rows[0].size(2);
  const int64_t gap = 2, rows_n = static_cast<int64_t>(rows.size());
  auto grid =
      torch::ones({bands, rows_n * size + (rows_n - 1) * gap, count * size + (count - 1) * gap});
  for (int64_t r = 0; r < rows_n; ++r)
    for (int64_t i = 0; i < count; ++i)
      grid.slice(1, r * (size + gap), r * (size + gap) + size)
          .slice(2, i * (size + gap), i * (size + gap) + size)
          .copy_(rows[r][i].clamp(0, 1));
  write_png(path, grid);
  return grid.size(2) * std::max<int64_t>(1, 96 / size);
}

torch::Tensor resized(const torch::Tensor& images, int64_t size) {
  namespace F = torch::nn::functional;
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{size, size})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
}

/// The first images of the data set [count, bands, size, size] as read, resampled to the
/// augmentation's size.
torch::Tensor first_images(const PreparedData& data) {
  const int64_t count = std::min<int64_t>(8, data.dataset->size());
  std::vector<torch::Tensor> images;
  for (int64_t i = 0; i < count; ++i) images.push_back(data.dataset->get(i).pixels);
  return resized(torch::stack(images), data.augment.size());
}

/// The first date of each image (a temporal run stacks augment.frames dates along the bands).
torch::Tensor first_frame(const PreparedData& data, const torch::Tensor& images) {
  return images.narrow(1, 0, data.bands());
}

/// Normalised views back to [0, 1]: x * std + mean per band.
torch::Tensor shown(const domains::AugmentOptions& augment, const torch::Tensor& normalised) {
  const auto& mean = augment.mean();
  const auto& std = augment.std();
  std::vector<torch::Tensor> bands;
  for (int64_t b = 0; b < normalised.size(1); ++b) {
    const double m = mean[mean.size() == 1 ? 0 : b], s = std[std.size() == 1 ? 0 : b];
    bands.push_back(normalised.select(1, b) * s + m);
  }
  return torch::stack(bands, 1);
}

Figure views_figure(const RunConfig& config, const PreparedData& data,
                    const torch::Tensor& stacks) {
  const auto& augment = data.augment;
  const auto views = domains::ViewAugment(augment)(stacks, config.run.seed(), 0);
  const auto originals = first_frame(data, stacks);
  const int64_t bands = originals.size(1) >= 3 ? 3 : 1;
  const auto first = [&](const torch::Tensor& x) { return shown(augment, x).slice(1, 0, bands); };
  const int64_t width = write_grid(
      RunDir(config.run.dir()).views_png(),
      {first(domains::evaluation_view(originals, augment)), first(views[0]), first(views[1])});
  return {"Top row: the first images as read (resampled to " + std::to_string(augment.size()) +
              " px" + (augment.window() == domains::WindowMode::kNone ? "" : ", first window") +
              "); below: two augmented views of each, as pretraining sees them (first " +
              std::to_string(bands) + (bands == 1 ? " band" : " bands") + ").",
          width};
}

/// The trained ViT's last-block attention over the first images (from the class token, else
/// averaged over queries), in red over the image: where the encoder looks without labels.
std::optional<Figure> attention_figure(const RunConfig& config, const PreparedData& data,
                                       const torch::Tensor& stacks, RunLog& log) {
  const RunDir run(config.run.dir());
  if (!std::filesystem::exists(run.checkpoint())) return std::nullopt;
  const auto method = load_method(config, EncoderSource{}, data.bands(), log);
  auto* vit = dynamic_cast<methods::ViTImpl*>(method->encoder().get());
  if (!vit) return std::nullopt;
  const auto originals = first_frame(data, stacks);
  torch::NoGradGuard no_grad;
  vit->eval();
  const auto device = torch::Device(config.run.device());
  const auto images = domains::evaluation_view(originals.to(device), data.augment);
  auto heat = resized(vit->attention_map(images).cpu().unsqueeze(1), data.augment.size());
  // Each map stretched to [0, 1] on its own: the pattern matters, not the scale.
  const auto low = heat.amin({1, 2, 3}, true), high = heat.amax({1, 2, 3}, true);
  heat = (heat - low) / (high - low).clamp_min(1e-12);
  // The images as evaluation sees them (first window) in [0, 1]: RGB as is, other bands as gray.
  auto plain = data.augment;
  const auto visible =
      domains::evaluation_view(originals, plain.mean({0.0}).std({1.0})).clamp(0, 1);
  const auto base = visible.size(1) == 3 ? visible : visible.mean(1, true).expand({-1, 3, -1, -1});
  const auto red = torch::tensor({1.f, 0.f, 0.f}).view({1, 3, 1, 1});
  const auto overlay = base * 0.5 + heat * red * 0.5;
  // Also one file per image, for a person to open one by one.
  std::filesystem::create_directories(run.attention());
  for (int64_t i = 0; i < overlay.size(0); ++i)
    write_png(run.attention_overlay(i), torch::cat({base[i], overlay[i]}, 2));
  const int64_t width = write_grid(run.attention_png(), {base, overlay});
  return Figure{"Top row: the first images; below: the last block's attention " +
                    std::string(vit->options().class_token() ? "from the class token"
                                                             : "averaged over tokens") +
                    " (red, each map scaled to its own range; also in " + run.attention() + "/).",
                width};
}

}  // namespace

void write_figures(const RunConfig& config, const PreparedData& data, RunLog& log) {
  const auto stacks = first_images(data);
  FiguresRecord record{views_figure(config, data, stacks),
                       attention_figure(config, data, stacks, log)};
  save_json(RunDir(config.run.dir()).figures_json(), to_json(record));
}

}  // namespace pretext::pipelines
