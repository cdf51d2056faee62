#include "io/dataset.h"

#include <algorithm>

#include "base/errors.h"
#include "io/source.h"

namespace pretext::io {

ImageDataset::ImageDataset(Catalog catalog, ImageDatasetOptions options)
    : catalog_(std::move(catalog)), options_(std::move(options)) {
  class_names_ = catalog_.class_names();
  if (!options_.bands().empty()) {
    channels_ = static_cast<int64_t>(options_.bands().size());
  } else if (catalog_.size() > 0) {
    channels_ = static_cast<int64_t>(open(catalog_.items()[0].path)->info().bands.size());
  }
}

Example ImageDataset::get(int64_t index) const {
  if (options_.cache_mb() <= 0) return decode(index);
  {
    const std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.empty()) cache_.resize(static_cast<size_t>(size()));
    const auto& cached = cache_.at(static_cast<size_t>(index));
    if (cached.defined()) return {cached, label_of(index)};
  }
  Example example = decode(index);
  const int64_t bytes = example.pixels.nbytes();
  const std::lock_guard<std::mutex> lock(cache_mutex_);
  auto& slot = cache_[static_cast<size_t>(index)];
  if (!slot.defined() && cached_bytes_ + bytes <= options_.cache_mb() << 20) {
    slot = example.pixels;
    cached_bytes_ += bytes;
  }
  return example;
}

Example ImageDataset::decode(int64_t index) const {
  const CatalogItem& item = catalog_.items().at(static_cast<size_t>(index));
  auto source = open(item.path);
  const SourceInfo& info = source->info();
  const auto& bands = options_.bands();
  if (bands.empty() && static_cast<int64_t>(info.bands.size()) != channels_)
    throw InputError(item.path + ": " + info.format + ": has " + std::to_string(info.bands.size()) +
                         " bands, the data set's first image has " + std::to_string(channels_) +
                         " (choose the bands to read)",
                     "bands");
  Region region{0, 0, info.width, info.height, options_.image_size(), options_.image_size()};
  Example example;
  example.pixels = source->read(region, bands).pixels;
  double scale = options_.value_scale();
  if (scale == 0.0)
    scale = 1.0 / full_scale(info.bands[bands.empty() ? 0 : bands[0] - 1].data_type);
  if (scale != 1.0) example.pixels.mul_(scale);
  example.label = label_of(index);
  return example;
}

CatalogItem ImageDataset::item(int64_t index) const {
  return catalog_.items().at(static_cast<size_t>(index));
}

void ImageDatasetOptions::visit_fields(FieldVisitor& visit) {
  visit("value_scale", value_scale_, Check::at_least(0));
  visit("cache_mb", cache_mb_, Check::at_least(0));
}

std::string Dataset::group_of(int64_t index, GroupBy by) const {
  if (by == GroupBy::kNone) return "";
  if (by == GroupBy::kAuto) {
    const auto group = item(index).group;
    if (!group.empty()) return "group:" + group;
  }
  return own_group(index, by);
}

std::string Dataset::own_group(int64_t index, GroupBy by) const {
  if (by != GroupBy::kAuto && by != GroupBy::kFile)
    throw InputError(item(index).path + ": this data has no " + name_of(by) +
                     " to group examples by (file, or none)");
  // An example's file: its path before any "#" that places it within the file.
  const auto path = item(index).path;
  return "file:" + path.substr(0, path.find('#'));
}

std::string ImageDataset::summary() const {
  return std::to_string(size()) + " images, " + std::to_string(channels_) + " bands, " +
         std::to_string(class_names_.size()) + " labels";
}

int64_t Dataset::get_into(int64_t index, at::Tensor out) const {
  Example example = get(index);
  if (example.pixels.sizes() != out.sizes())
    throw InputError(item(index).path + ": example of shape " + c10::str(example.pixels.sizes()) +
                     ", the batch's first is " + c10::str(out.sizes()));
  out.copy_(example.pixels);
  return example.label;
}

namespace {

int64_t class_index(const std::vector<std::string>& names, const std::string& label) {
  return std::lower_bound(names.begin(), names.end(), label) - names.begin();
}

}  // namespace

int64_t Dataset::label_of(int64_t index) const {
  const std::string label = item(index).label;
  return label.empty() ? -1 : class_index(class_names(), label);
}

std::vector<int64_t> Dataset::label_set(int64_t index) const {
  const auto example = item(index);
  if (!example.label.empty()) return {class_index(class_names(), example.label)};
  std::vector<int64_t> classes;
  for (const auto& label : example.labels) classes.push_back(class_index(class_names(), label));
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  return classes;
}

}  // namespace pretext::io
