#include "domains/scenes.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <list>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include <torch/types.h>
#include <nlohmann/json.hpp>

#include "base/errors.h"

namespace pretext::domains {
namespace {

// Validity is mapped on cells of about an eighth of a window side.
constexpr int64_t kCellsPerWindow = 8;
// Open rasters kept per loader thread (a GDAL handle is not shared between threads).
constexpr size_t kHandlesPerThread = 8;

double overlap(const io::Bounds& a, const io::Bounds& b) {
  const double w = std::min(a.max_x, b.max_x) - std::max(a.min_x, b.min_x);
  const double h = std::min(a.max_y, b.max_y) - std::max(a.min_y, b.min_y);
  if (w <= 0 || h <= 0) return 0.0;
  const double intersection = w * h;
  return intersection / (a.area() + b.area() - intersection);
}

bool same_grid(const io::Grid& a, const io::Grid& b) {
  return a.crs_wkt == b.crs_wkt && a.width == b.width && a.height == b.height &&
         a.geo_transform == b.geo_transform;
}

// Days apart within the year, 0 to 182.
int64_t season_distance(const io::Date& a, const io::Date& b) {
  const int64_t d = std::abs(a.day_of_year() - b.day_of_year());
  return std::min<int64_t>(d, 365 - d);
}

std::string json_list(const std::vector<double>& values) {
  std::ostringstream out;
  out.precision(17);
  out << "[";
  for (size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  out << "]";
  return out.str();
}

}  // namespace

SceneDataset::SceneDataset(const io::Catalog& catalog, SceneOptions options)
    : options_(std::move(options)), multi_label_(catalog.multi_label()) {
  static std::atomic<uint64_t> next_id{1};
  id_ = next_id++;
  std::vector<Geometry> geometry;
  for (const auto& item : catalog.items()) {
    try {
      geometry.push_back(add_scene(item));
    } catch (const InputError& e) {
      if (options_.on_bad_file() == io::OnBadFile::kFail) throw;
      bad_files_.push_back({e.what()});
    }
  }
  if (scenes_.empty())
    throw InputError("no usable scene among " + std::to_string(catalog.size()) + " files");
  read_options_.bands(std::vector<int64_t>(band_indices_))
      .cloud_band(options_.cloud_band())
      .cloud_values(std::vector<double>(options_.cloud_values()));
  if (!options_.fallback_nodata().empty())
    read_options_.fallback_nodata(options_.fallback_nodata()[0]);
  group_places(geometry);
  std::set<std::string> labels;
  for (const auto& scene : scenes_) io::add_labels(scene.item, labels);
  class_names_.assign(labels.begin(), labels.end());
  for (size_t p = 0; p < places_.size(); ++p) map_place(static_cast<int64_t>(p), geometry);
  if (examples_.empty())
    throw InputError("no window of " + std::to_string(options_.window_size()) +
                     " pixels has at least " + std::to_string(options_.min_valid_fraction()) +
                     " valid pixels" + (options_.frames() > 1 ? " on enough dates" : "") + " (" +
                     std::to_string(rejected_) + " rejected)");
}

std::vector<int64_t> SceneDataset::bands_of(const io::GdalRaster& raster, const std::string& path) {
  const int64_t band_count = static_cast<int64_t>(raster.info().bands.size());
  std::vector<int64_t> bands = options_.bands();
  for (const auto& name : options_.band_names()) bands.push_back(raster.band_named(name));
  if (bands.empty())
    for (int64_t b = 1; b <= band_count; ++b) bands.push_back(b);
  for (const int64_t b : bands)
    if (b < 1 || b > band_count)
      throw InputError(path + ": band " + std::to_string(b) + " requested, the file has " +
                       std::to_string(band_count));
  if (first_path_.empty()) {
    // The first scene names the bands; every other must have the same.
    first_path_ = path;
    first_band_count_ = band_count;
    for (const int64_t b : bands) {
      const auto& description = raster.info().bands[static_cast<size_t>(b - 1)].description;
      band_names_.push_back(description.empty() ? "band " + std::to_string(b) : description);
    }
    band_indices_ = bands;
  } else if (band_count != first_band_count_ || bands != band_indices_) {
    throw InputError(path + ": has " + std::to_string(band_count) + " bands, chosen as [" +
                     json_list({bands.begin(), bands.end()}) + "]; " + first_path_ + " has " +
                     std::to_string(first_band_count_) +
                     " (a series needs the same bands on every date)");
  }
  return bands;
}

SceneDataset::Geometry SceneDataset::add_scene(const io::CatalogItem& item) {
  const bool temporal = options_.frames() > 1;
  io::GdalRaster raster(item.path);
  bands_of(raster, item.path);
  Scene scene;
  scene.item = item;
  scene.dated = true;
  if (!item.date.empty()) {
    scene.date = *io::parse_date(item.date);  // checked when the manifest was read
  } else if (!options_.date_pattern().empty()) {
    scene.date = io::date_from_name(item.path, options_.date_pattern());
  } else if (const auto found = raster.acquisition_date()) {
    scene.date = found->first;
  } else if (!temporal) {
    scene.dated = false;
  } else {
    throw InputError(item.path +
                         ": no acquisition date in its metadata (ACQUISITION_DATE, "
                         "TIFFTAG_DATETIME, ...); give a date pattern to read it from file "
                         "names",
                     "date_pattern");
  }
  Geometry geometry;
  if (raster.georeference() && !raster.georeference()->crs_wkt.empty()) {
    static const std::string wgs84 = io::crs_wkt_from_epsg(4326);
    geometry.grid = raster.grid();
    geometry.footprint = raster.footprint_in(wgs84);
  } else if (temporal) {
    throw InputError(item.path +
                     ": no georeference (CRS and transform), needed to pair it with other "
                     "dates of the same place");
  }
  geometry.sample_distance = raster.ground_sample_distance();
  scenes_.push_back(scene);
  return geometry;
}

void SceneDataset::group_places(const std::vector<Geometry>& geometry) {
  // Places: connected groups of overlapping footprints (every scene its own without frames).
  std::vector<int64_t> parent(scenes_.size());
  std::iota(parent.begin(), parent.end(), 0);
  const std::function<int64_t(int64_t)> root = [&](int64_t i) {
    return parent[static_cast<size_t>(i)] == i
               ? i
               : parent[static_cast<size_t>(i)] = root(parent[static_cast<size_t>(i)]);
  };
  // A manifest's place column decides where it is given; footprints decide the rest. Found
  // whether or not examples stack dates: evaluation keeps the dates of one place on one side.
  for (size_t i = 0; i < scenes_.size(); ++i)
    for (size_t j = i + 1; j < scenes_.size(); ++j) {
      const auto& a = scenes_[i].item.place;
      const auto& b = scenes_[j].item.place;
      const bool same = a.empty() || b.empty()
                            ? a.empty() && b.empty() &&
                                  overlap(geometry[i].footprint, geometry[j].footprint) >=
                                      options_.place_overlap()
                            : a == b;
      if (same)
        parent[static_cast<size_t>(root(static_cast<int64_t>(j)))] = root(static_cast<int64_t>(i));
    }
  std::map<int64_t, int64_t> place_of_root;
  for (size_t i = 0; i < scenes_.size(); ++i) {
    scenes_[i].same_place_as = root(static_cast<int64_t>(i));
    // Without frames every scene is read on its own grid: a place of its own.
    const int64_t r = options_.frames() > 1 ? scenes_[i].same_place_as : static_cast<int64_t>(i);
    if (!place_of_root.count(r)) {
      place_of_root[r] = static_cast<int64_t>(places_.size());
      places_.emplace_back();
    }
    scenes_[i].place = place_of_root[r];
    places_[static_cast<size_t>(scenes_[i].place)].scenes.push_back(static_cast<int64_t>(i));
  }
}

void SceneDataset::map_place(int64_t index, const std::vector<Geometry>& geometry) {
  auto& place = places_[static_cast<size_t>(index)];
  std::stable_sort(place.scenes.begin(), place.scenes.end(), [&](int64_t a, int64_t b) {
    return scenes_[static_cast<size_t>(a)].date.days() <
           scenes_[static_cast<size_t>(b)].date.days();
  });
  const auto first = static_cast<size_t>(place.scenes.front());
  place.grid = geometry[first].grid;
  place.georeferenced = !place.grid.crs_wkt.empty();
  for (const int64_t s : place.scenes)
    scenes_[static_cast<size_t>(s)].warped =
        options_.frames() > 1 && !same_grid(geometry[static_cast<size_t>(s)].grid, place.grid);
  // The window side in the files' own pixels; the first place's decides for all.
  if (native_window_ == 0) {
    const double native = geometry[first].sample_distance;
    native_window_ =
        options_.ground_sample_distance() > 0 && native > 0
            ? std::max<int64_t>(1, std::llround(static_cast<double>(options_.window_size()) *
                                                options_.ground_sample_distance() / native))
            : options_.window_size();
  }
  // Validity of every date at a coarse resolution: kCellsPerWindow cells per window side.
  const int64_t cell = std::max<int64_t>(1, native_window_ / kCellsPerWindow);
  std::vector<at::Tensor> valid_maps;
  for (const int64_t s : place.scenes) {
    try {
      auto raster = open(s);
      const auto& info = raster->info();
      io::Region whole{0,
                       0,
                       info.width,
                       info.height,
                       std::max<int64_t>(1, info.width / cell),
                       std::max<int64_t>(1, info.height / cell)};
      valid_maps.push_back(raster->read_window(whole, read_options_).valid.to(torch::kFloat32));
    } catch (const InputError& e) {
      if (options_.on_bad_file() == io::OnBadFile::kFail) throw;
      bad_files_.push_back({e.what()});
      valid_maps.push_back(at::Tensor());
    }
  }
  add_place(index, valid_maps, cell);
}

std::vector<std::pair<int64_t, int64_t>> SceneDataset::window_origins(int64_t place, int64_t width,
                                                                      int64_t height) const {
  const int64_t side = native_window_;
  std::vector<std::pair<int64_t, int64_t>> origins;
  if (width < side || height < side) return origins;
  if (options_.placement() == WindowPlacement::kGrid) {
    for (int64_t y = 0; y + side <= height; y += side)
      for (int64_t x = 0; x + side <= width; x += side) origins.emplace_back(x, y);
    return origins;
  }
  // As many windows as the grid holds, anywhere: drawn once per place from the seed.
  std::mt19937_64 random(options_.seed() * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(place));
  std::uniform_int_distribution<int64_t> column(0, width - side), row(0, height - side);
  const int64_t count = (width / side) * (height / side);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t x = column(random);
    origins.emplace_back(x, row(random));
  }
  return origins;
}

void SceneDataset::add_place(int64_t p, const std::vector<at::Tensor>& valid_maps, int64_t cell) {
  const auto& place = places_[static_cast<size_t>(p)];
  const auto& reference = scenes_[static_cast<size_t>(place.scenes.front())];
  const int64_t width = place.georeferenced ? place.grid.width : 0;
  const int64_t height = place.georeferenced ? place.grid.height : 0;
  const int64_t frames = options_.frames();
  int64_t kept = 0, rejected = 0;
  // Each window of the grid: the dates on which it is valid enough.
  const auto valid_fraction = [&](size_t k, int64_t x, int64_t y) {
    const auto& map = valid_maps[k];
    if (!map.defined()) return 0.0;
    const int64_t top = y / cell, left = x / cell;
    const int64_t bottom = std::min<int64_t>(map.size(0), (y + native_window_ + cell - 1) / cell);
    const int64_t right = std::min<int64_t>(map.size(1), (x + native_window_ + cell - 1) / cell);
    if (bottom <= top || right <= left) return 0.0;
    return map.slice(0, top, bottom).slice(1, left, right).mean().item<double>();
  };
  // Grid size from the reference scene when the place has no georeference (frames == 1).
  int64_t grid_width = width, grid_height = height;
  if (!place.georeferenced) {
    auto raster = open(place.scenes.front());
    grid_width = raster->info().width;
    grid_height = raster->info().height;
  }
  for (const auto& origin : window_origins(p, grid_width, grid_height)) {
    const int64_t x = origin.first, y = origin.second;
    std::vector<int64_t> dates;
    for (size_t k = 0; k < place.scenes.size(); ++k) {
      if (valid_fraction(k, x, y) >= options_.min_valid_fraction())
        dates.push_back(place.scenes[k]);
      else
        ++rejected;
    }
    if (frames == 1) {
      for (const int64_t s : dates) examples_.push_back({x, y, {s}});
      kept += static_cast<int64_t>(dates.size());
      continue;
    }
    const auto fits = [&](int64_t a, int64_t b) {
      const auto& da = scenes_[static_cast<size_t>(a)].date;
      const auto& db = scenes_[static_cast<size_t>(b)].date;
      const int64_t gap = db.days() - da.days();
      const int64_t season = season_distance(da, db);
      return gap >= options_.min_gap_days() && gap <= options_.max_gap_days() &&
             (options_.max_season_days() <= 0 || season <= options_.max_season_days()) &&
             (options_.min_season_days() <= 0 || season >= options_.min_season_days());
    };
    // Two frames: every fitting pair. More: from each start, the earliest fitting next date.
    for (size_t a = 0; a < dates.size(); ++a) {
      if (frames == 2) {
        for (size_t b = a + 1; b < dates.size(); ++b)
          if (fits(dates[a], dates[b])) {
            examples_.push_back({x, y, {dates[a], dates[b]}});
            ++kept;
          }
        continue;
      }
      std::vector<int64_t> chain = {dates[a]};
      for (size_t b = a + 1; b < dates.size() && static_cast<int64_t>(chain.size()) < frames; ++b)
        if (fits(chain.back(), dates[b])) chain.push_back(dates[b]);
      if (static_cast<int64_t>(chain.size()) == frames) {
        examples_.push_back({x, y, chain});
        ++kept;
      }
    }
  }
  rejected_ += rejected;
  std::string line = reference.item.path + ": " + std::to_string(kept) +
                     (frames > 1 ? " series of " + std::to_string(frames) + " dates" : " windows") +
                     ", " + std::to_string(rejected) + " window-dates rejected (valid < " +
                     std::to_string(options_.min_valid_fraction()) + ")";
  if (frames > 1) {
    int64_t warped = 0;
    for (const int64_t s : place.scenes) warped += scenes_[static_cast<size_t>(s)].warped ? 1 : 0;
    line += "; " + std::to_string(place.scenes.size()) + " dates from " + reference.date.iso() +
            " to " + scenes_[static_cast<size_t>(place.scenes.back())].date.iso() + ", " +
            std::to_string(warped) + " warped onto the first one's grid";
  }
  notes_.push_back({io::DatasetNote::Severity::kDetail, line});
}

std::shared_ptr<io::GdalRaster> SceneDataset::open(int64_t scene) const {
  thread_local std::list<std::pair<std::pair<uint64_t, int64_t>, std::shared_ptr<io::GdalRaster>>>
      handles;  // most recent first
  const auto key = std::make_pair(id_, scene);
  for (auto it = handles.begin(); it != handles.end(); ++it)
    if (it->first == key) {
      handles.splice(handles.begin(), handles, it);
      return it->second;
    }
  const auto& s = scenes_[static_cast<size_t>(scene)];
  std::shared_ptr<io::GdalRaster> raster =
      s.warped ? std::shared_ptr<io::GdalRaster>(io::GdalRaster::warped(
                     s.item.path, places_[static_cast<size_t>(s.place)].grid))
               : std::make_shared<io::GdalRaster>(s.item.path);
  handles.emplace_front(key, raster);
  if (handles.size() > kHandlesPerThread) handles.pop_back();
  return raster;
}

io::Region SceneDataset::window(const Example& example) const {
  return {example.x,
          example.y,
          native_window_,
          native_window_,
          options_.window_size(),
          options_.window_size()};
}

int64_t SceneDataset::channels() const {
  return static_cast<int64_t>(band_indices_.size()) * options_.frames();
}

io::Example SceneDataset::get(int64_t index) const {
  const auto& example = examples_.at(static_cast<size_t>(index));
  std::vector<torch::Tensor> frames;
  for (const int64_t s : example.scenes) {
    auto patch = open(s)->read_window(window(example), read_options_);
    const auto invalid = patch.valid.logical_not();
    for (int64_t b = 0; b < patch.pixels.size(0); ++b)
      patch.pixels[b].masked_fill_(invalid, fill_.empty() ? 0.0 : fill_[static_cast<size_t>(b)]);
    frames.push_back(patch.pixels);
  }
  return {frames.size() == 1 ? frames[0] : torch::cat(frames), label_of(index)};
}

std::vector<int64_t> SceneDataset::acquired_at(int64_t index) const {
  std::vector<int64_t> days;
  for (const int64_t s : examples_.at(static_cast<size_t>(index)).scenes) {
    const auto& scene = scenes_[static_cast<size_t>(s)];
    if (!scene.dated) return {};
    days.push_back(scene.date.days());
  }
  return days;
}

io::CatalogItem SceneDataset::item(int64_t index) const {
  const auto& example = examples_.at(static_cast<size_t>(index));
  std::string path;
  for (const int64_t s : example.scenes)
    path += (path.empty() ? "" : "|") + scenes_[static_cast<size_t>(s)].item.path;
  auto item = scenes_[static_cast<size_t>(example.scenes.front())].item;
  item.path = path + "#x=" + std::to_string(example.x) + ",y=" + std::to_string(example.y);
  return item;
}

std::array<double, 2> SceneDataset::map_origin(int64_t index) const {
  const auto& example = examples_.at(static_cast<size_t>(index));
  const auto& t =
      places_[static_cast<size_t>(scenes_[static_cast<size_t>(example.scenes[0])].place)]
          .grid.geo_transform;
  return {t[0] + static_cast<double>(example.x) * t[1],
          t[3] + static_cast<double>(example.y) * t[5]};
}

void SceneOptions::visit_fields(FieldVisitor& visit) {
  visit("ground_sample_distance", ground_sample_distance_, Check::at_least(0));
  visit("band_names", band_names_);
  visit("fallback_nodata", fallback_nodata_);
  visit("cloud_band", cloud_band_, Check::at_least(0));
  visit("cloud_values", cloud_values_);
  visit("min_valid_fraction", min_valid_fraction_, Check::between(0, 1));
  visit("window_placement", placement_);
  visit("date_pattern", date_pattern_);
  visit("frames", frames_, Check::between(1, 64));
  visit("min_gap_days", min_gap_days_, Check::at_least(0));
  visit("max_gap_days", max_gap_days_, Check::at_least(0));
  visit("min_season_days", min_season_days_, Check::between(0, 182));
  visit("max_season_days", max_season_days_, Check::between(0, 182));
  visit("place_overlap", place_overlap_, Check::between(0.01, 1));
}

std::string SceneDataset::own_group(int64_t index, io::GroupBy by) const {
  if (by != io::GroupBy::kAuto && by != io::GroupBy::kPlace)
    return io::Dataset::own_group(index, by);
  const auto& example = examples_.at(static_cast<size_t>(index));
  return "place:" +
         std::to_string(scenes_.at(static_cast<size_t>(example.scenes.front())).same_place_as);
}

std::string SceneDataset::summary() const {
  return std::to_string(scenes_.size()) + " scenes in " + std::to_string(places_.size()) +
         " places, " + std::to_string(examples_.size()) +
         (options_.frames() > 1 ? " series of " + std::to_string(options_.frames()) + " dates"
                                : " windows") +
         " of " + std::to_string(options_.window_size()) + " px (" + std::to_string(rejected_) +
         " window-dates rejected as invalid), bands " + [&] {
           std::string names;
           for (const auto& n : band_names_) names += (names.empty() ? "" : ", ") + n;
           return names;
         }();
}

BandStatistics SceneDataset::measure_statistics(int64_t windows) const {
  const int64_t bands = static_cast<int64_t>(band_indices_.size());
  const int64_t count = std::min<int64_t>(std::max<int64_t>(1, windows), size());
  const int64_t stride = std::max<int64_t>(1, size() / count);
  std::vector<double> sum(static_cast<size_t>(bands)), squares(static_cast<size_t>(bands));
  std::vector<std::vector<torch::Tensor>> samples(static_cast<size_t>(bands));
  int64_t pixels = 0;
  for (int64_t k = 0; k < count; ++k) {
    const auto& example = examples_[static_cast<size_t>(k * stride)];
    for (const int64_t s : example.scenes) {
      const auto patch = open(s)->read_window(window(example), read_options_);
      const auto valid = patch.valid.flatten();
      const int64_t n = valid.sum().item<int64_t>();
      if (n == 0) continue;
      pixels += n;
      // Up to 1,024 evenly spaced valid values per band and window for the percentiles.
      const auto picked = torch::linspace(0, static_cast<double>(n - 1), std::min<int64_t>(n, 1024))
                              .round()
                              .to(torch::kInt64);
      for (int64_t b = 0; b < bands; ++b) {
        const auto values = patch.pixels[b].flatten().masked_select(valid).to(torch::kFloat64);
        sum[static_cast<size_t>(b)] += values.sum().item<double>();
        squares[static_cast<size_t>(b)] += (values * values).sum().item<double>();
        samples[static_cast<size_t>(b)].push_back(values.index_select(0, picked));
      }
    }
  }
  BandStatistics statistics;
  statistics.windows = count;
  statistics.pixels = pixels;
  if (pixels == 0) throw InputError("no valid pixel in the windows sampled for band statistics");
  for (int64_t b = 0; b < bands; ++b) {
    const double mean = sum[static_cast<size_t>(b)] / static_cast<double>(pixels);
    const double variance =
        std::max(0.0, squares[static_cast<size_t>(b)] / static_cast<double>(pixels) - mean * mean);
    const auto values = torch::cat(samples[static_cast<size_t>(b)]);
    statistics.mean.push_back(mean);
    statistics.std.push_back(std::sqrt(variance));
    statistics.p2.push_back(torch::quantile(values, 0.02).item<double>());
    statistics.p98.push_back(torch::quantile(values, 0.98).item<double>());
  }
  return statistics;
}

void SceneDataset::set_statistics(const BandStatistics& statistics) { fill_ = statistics.mean; }

void save_band_statistics(const std::string& path, const nlohmann::json& key,
                          const BandStatistics& statistics) {
  const nlohmann::ordered_json json = {{"key", key},
                                       {"windows", statistics.windows},
                                       {"pixels", statistics.pixels},
                                       {"mean", statistics.mean},
                                       {"std", statistics.std},
                                       {"p2", statistics.p2},
                                       {"p98", statistics.p98}};
  const std::string temporary = path + ".part";
  {
    std::ofstream out(temporary);
    out << json.dump(2) << "\n";
    if (!out) throw InputError(path + ": cannot write band statistics");
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) throw InputError(path + ": cannot write band statistics (" + error.message() + ")");
}

std::optional<BandStatistics> load_band_statistics(const std::string& path,
                                                   const nlohmann::json& key) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  BandStatistics statistics;
  try {
    const auto json = nlohmann::json::parse(in);
    if (json.at("key") != key) return std::nullopt;
    statistics.windows = json.at("windows").get<int64_t>();
    statistics.pixels = json.at("pixels").get<int64_t>();
    statistics.mean = json.at("mean").get<std::vector<double>>();
    statistics.std = json.at("std").get<std::vector<double>>();
    statistics.p2 = json.at("p2").get<std::vector<double>>();
    statistics.p98 = json.at("p98").get<std::vector<double>>();
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // damaged or of another layout: measured again
  }
  if (statistics.mean.empty() || statistics.mean.size() != statistics.std.size())
    return std::nullopt;
  return statistics;
}

}  // namespace pretext::domains
