#include "domains/tissue.h"

#include <algorithm>
#include <cmath>

#include <torch/types.h>

namespace pretext::domains {

void TissueOptions::visit_fields(FieldVisitor& visit) {
  visit("microns_per_pixel", microns_per_pixel_, Check::above(0));
  visit("min_tissue_fraction", min_tissue_fraction_, Check::between(0, 1));
}

torch::Tensor saturation(const torch::Tensor& rgb) {
  const auto x = rgb.to(torch::kFloat32);
  const auto high = std::get<0>(x.max(0));
  const auto low = std::get<0>(x.min(0));
  return torch::where(high > 0, (high - low) / high.clamp_min(1), torch::zeros_like(high));
}

double otsu_threshold(const torch::Tensor& values) {
  const auto histogram =
      torch::histc(values.flatten().to(torch::kFloat32).clamp(0, 1), 256, 0, 1).to(torch::kFloat64);
  const auto* h = histogram.data_ptr<double>();
  double total = 0, weighted = 0;
  for (int i = 0; i < 256; ++i) {
    total += h[i];
    weighted += i * h[i];
  }
  double below = 0, below_weighted = 0, best = -1;
  int best_bin = 0;
  for (int k = 0; k < 255; ++k) {
    below += h[k];
    below_weighted += k * h[k];
    const double above = total - below;
    if (below == 0 || above == 0) continue;
    const double mean_below = below_weighted / below;
    const double mean_above = (weighted - below_weighted) / above;
    const double between = below * above * (mean_below - mean_above) * (mean_below - mean_above);
    if (between > best) {
      best = between;
      best_bin = k;
    }
  }
  return (best_bin + 1) / 256.0;  // values above bin k's upper edge are the upper class
}

torch::Tensor remove_small_regions(const torch::Tensor& mask, int64_t min_pixels) {
  auto out = mask.to(torch::kBool).contiguous().clone();
  if (min_pixels <= 1) return out;
  const int64_t height = out.size(0), width = out.size(1);
  auto* m = out.data_ptr<bool>();
  std::vector<uint8_t> seen(static_cast<size_t>(height * width), 0);
  std::vector<int64_t> region, stack;
  for (int64_t start = 0; start < height * width; ++start) {
    if (!m[start] || seen[start]) continue;
    region.clear();
    stack.assign(1, start);
    seen[start] = 1;
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      region.push_back(p);
      const int64_t y = p / width, x = p % width;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t ny = y + dy, nx = x + dx;
          if (ny < 0 || ny >= height || nx < 0 || nx >= width) continue;
          const int64_t q = ny * width + nx;
          if (m[q] && !seen[q]) {
            seen[q] = 1;
            stack.push_back(q);
          }
        }
    }
    if (static_cast<int64_t>(region.size()) < min_pixels)
      for (const int64_t p : region) m[p] = false;
  }
  return out;
}

TissueMap map_tissue(io::Slide& slide, const TissueOptions& options) {
  const auto& info = slide.info();
  TissueMap map;
  for (int64_t level = static_cast<int64_t>(info.levels.size()) - 1; level >= 0; --level)
    if (info.levels[static_cast<size_t>(level)].width >= options.detection_width()) {
      map.level = level;
      break;
    }
  const auto& level = info.levels[static_cast<size_t>(map.level)];
  map.factor = std::max<int64_t>(1, level.width / options.detection_width());
  map.downsample = level.downsample * static_cast<double>(map.factor);
  const auto rgb = slide.read_level(map.level, map.factor);
  const auto s = saturation(rgb);
  map.threshold = std::max(otsu_threshold(s), options.min_saturation());
  const double mask_pixel_um = info.microns_per_pixel_x * map.downsample;
  const auto min_pixels =
      static_cast<int64_t>(std::ceil(options.min_region_um2() / (mask_pixel_um * mask_pixel_um)));
  map.mask = remove_small_regions(s > map.threshold, min_pixels);

  // Tissue fraction of any rectangle from the integral image of the mask.
  const int64_t mh = map.mask.size(0), mw = map.mask.size(1);
  auto integral = torch::zeros({mh + 1, mw + 1}, torch::kFloat64);
  integral.slice(0, 1).slice(1, 1) = map.mask.to(torch::kFloat64).cumsum(0).cumsum(1);
  const auto sums = integral.accessor<double, 2>();
  const auto side =
      std::max<int64_t>(1, std::llround(static_cast<double>(options.tile_size()) *
                                        options.microns_per_pixel() / info.microns_per_pixel_x));
  const int64_t width0 = info.levels[0].width, height0 = info.levels[0].height;
  // At a level's own resolution, with tiles no larger than the slide's, the grid follows the
  // slide's tile grid: as many tiles as fit inside each stored tile, from its corner, so that
  // each is read from one stored tile (decoded once, no compositing); a stored tile's remainder
  // is left to the augmentation's crops. Otherwise contiguous tiles from the origin.
  const auto& read = info.levels[static_cast<size_t>(slide.level_for(options.microns_per_pixel()))];
  const double read_mpp = info.microns_per_pixel_x * read.downsample;
  const bool native = std::abs(read_mpp / options.microns_per_pixel() - 1) < 1e-3;
  map.on_tile_grid =
      native && read.tile_width >= options.tile_size() && read.tile_height >= options.tile_size();
  const auto positions = [&](int64_t extent, int64_t stored_tile) {
    const int64_t step =
        map.on_tile_grid ? std::llround(static_cast<double>(stored_tile) * read.downsample) : side;
    const int64_t per_step = std::max<int64_t>(1, step / side);
    std::vector<int64_t> out;
    for (int64_t origin = 0; origin < extent; origin += step)
      for (int64_t k = 0; k < per_step; ++k)
        if (origin + (k + 1) * side <= extent) out.push_back(origin + k * side);
    return out;
  };
  const auto columns = positions(width0, read.tile_width);
  for (const int64_t y : positions(height0, read.tile_height))
    for (const int64_t x : columns) {
      ++map.grid_tiles;
      const auto to_mask = [&](int64_t v, int64_t limit, bool up) {
        const double scaled = static_cast<double>(v) / map.downsample;
        return std::clamp<int64_t>(
            up ? static_cast<int64_t>(std::ceil(scaled)) : static_cast<int64_t>(std::floor(scaled)),
            0, limit);
      };
      const int64_t top = to_mask(y, mh - 1, false), left = to_mask(x, mw - 1, false);
      const int64_t bottom = std::max(top + 1, to_mask(y + side, mh, true));
      const int64_t right = std::max(left + 1, to_mask(x + side, mw, true));
      const double tissue =
          sums[bottom][right] - sums[top][right] - sums[bottom][left] + sums[top][left];
      const double area = static_cast<double>((bottom - top) * (right - left));
      if (tissue / area >= options.min_tissue_fraction()) map.tiles.push_back({x, y, side});
    }
  return map;
}

torch::Tensor tissue_thumbnail(io::Slide& slide, const TissueMap& map) {
  auto rgb = slide.read_level(map.level, map.factor).to(torch::kFloat32);
  rgb = torch::where(map.mask.unsqueeze(0), rgb, rgb * 0.35f + 165.f);
  const int64_t mh = rgb.size(1), mw = rgb.size(2);
  const auto green = torch::tensor({0.f, 200.f, 0.f}).view({3, 1});
  for (const auto& tile : map.tiles) {
    const auto clampy = [&](double v, int64_t limit) {
      return std::clamp<int64_t>(static_cast<int64_t>(v), 0, limit - 1);
    };
    const int64_t top = clampy(tile.y / map.downsample, mh);
    const int64_t left = clampy(tile.x / map.downsample, mw);
    const int64_t bottom = clampy((tile.y + tile.side) / map.downsample - 1, mh);
    const int64_t right = clampy((tile.x + tile.side) / map.downsample - 1, mw);
    for (const int64_t row : {top, bottom})
      rgb.select(1, row).slice(1, left, right + 1) = green.expand({3, right - left + 1});
    for (const int64_t column : {left, right})
      rgb.select(2, column).slice(1, top, bottom + 1) = green.expand({3, bottom - top + 1});
  }
  return rgb.round().clamp(0, 255).to(torch::kUInt8);
}

}  // namespace pretext::domains
