#include "domains/slices.h"

#include <algorithm>
#include <set>

#include <torch/nn/functional.h>
#include <torch/types.h>

#include "base/errors.h"
#include "domains/sampler.h"
#include "io/source.h"

namespace pretext::domains {
namespace F = torch::nn::functional;
namespace {

// Tries before giving up on finding a non-background slice for one example.
constexpr int kRejectionTries = 16;

std::string plural(int64_t n, const std::string& word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

}  // namespace

SliceDataset::SliceDataset(const io::Catalog& catalog, SliceDatasetOptions options)
    : options_(std::move(options)) {
  if (options_.slab() < 1 || options_.slab() % 2 == 0)
    throw InputError("slab " + std::to_string(options_.slab()) + " (must be odd and >= 1)");
  if (catalog.multi_label())
    throw InputError(catalog.source() +
                     ": slices take one label per series or volume (a manifest 'label' column), "
                     "not a 'labels' column");
  std::vector<io::CatalogItem> dicom_files, volume_files;
  for (const auto& item : catalog.items())
    (io::detect_format(item.path) == io::Format::kDicom ? dicom_files : volume_files)
        .push_back(item);
  if (!dicom_files.empty()) dicom_ = io::scan_dicom(dicom_files, options_.on_bad_file());
  int64_t samples = 0;
  for (const auto& series : dicom_.series) {
    stacks_.push_back(
        {&series, "", static_cast<int64_t>(series.slices.size()), series.label, series.split});
    samples = std::max(samples, series.format.samples_per_pixel);
  }
  for (const auto& item : volume_files) {
    const auto shape = io::read_volume_shape(item.path);
    stacks_.push_back({nullptr, item.path, shape.at(static_cast<size_t>(options_.axis())),
                       item.label, item.split});
    samples = std::max<int64_t>(samples, 1);
  }
  for (const auto& stack : stacks_)
    if (stack.series && stack.series->format.samples_per_pixel != samples)
      throw InputError(stack.series->slices.front().path + ": " +
                       std::to_string(stack.series->format.samples_per_pixel) +
                       " samples per pixel, other series have " + std::to_string(samples) +
                       " (a data set is all grayscale or all colour)");
  channels_ = samples * options_.slab();
  std::set<std::string> labels;
  for (int64_t s = 0; s < static_cast<int64_t>(stacks_.size()); ++s) {
    for (int64_t i = 0; i < stacks_[s].slices; ++i) index_.emplace_back(s, i);
    if (!stacks_[s].label.empty()) labels.insert(stacks_[s].label);
  }
  class_names_.assign(labels.begin(), labels.end());
  if (index_.empty()) throw InputError("no slices among " + plural(catalog.size(), "file"));
  verdict_.reset(new std::atomic<uint8_t>[index_.size()]());
}

std::shared_ptr<const io::Volume> SliceDataset::volume(const std::string& path) const {
  {
    const std::lock_guard<std::mutex> lock(volume_mutex_);
    for (auto it = volumes_.begin(); it != volumes_.end(); ++it)
      if (it->first == path) {
        volumes_.splice(volumes_.begin(), volumes_, it);  // most recently used first
        return it->second;
      }
  }
  auto loaded = std::make_shared<const io::Volume>(io::read_volume(path));
  const std::lock_guard<std::mutex> lock(volume_mutex_);
  volumes_.emplace_front(path, loaded);
  while (static_cast<int64_t>(volumes_.size()) > std::max<int64_t>(1, options_.volume_cache()))
    volumes_.pop_back();
  return loaded;
}

SliceDataset::Slab SliceDataset::read_slab_valid(int64_t stack_index, int64_t slice) const {
  const Stack& stack = stacks_.at(static_cast<size_t>(stack_index));
  const int64_t half = options_.slab() / 2;
  std::vector<int64_t> members;
  for (int64_t i = slice - half; i <= slice + half; ++i)
    members.push_back(std::clamp<int64_t>(i, 0, stack.slices - 1));
  if (stack.series) {
    std::vector<torch::Tensor> planes;
    Slab slab;
    for (size_t m = 0; m < members.size(); ++m) {
      const auto& s = stack.series->slices[static_cast<size_t>(members[m])];
      auto frame = io::decode_dicom_frame(s.path, s.frame);
      planes.push_back(frame.values);
      if (m == members.size() / 2) slab.centre_valid = frame.valid;
    }
    slab.values = planes.size() == 1 ? planes[0] : torch::cat(planes, 0);
    return slab;
  }
  const auto v = volume(stack.volume_path);
  return {v->voxels.index_select(options_.axis(), torch::tensor(members))
              .movedim(options_.axis(), 0)
              .contiguous(),
          {}};
}

bool SliceDataset::body_enough(const Slab& slab) const {
  auto body = slab.values[slab.values.size(0) / 2] > options_.body_threshold();
  if (slab.centre_valid.defined()) body = body.logical_and(slab.centre_valid);
  const double fraction = body.to(torch::kFloat32).mean().item<float>();
  return fraction >= options_.min_body_fraction();
}

std::optional<SliceDataset::Slab> SliceDataset::try_read(int64_t candidate) const {
  const auto [stack, slice] = index_[static_cast<size_t>(candidate)];
  try {
    return read_slab_valid(stack, slice);
  } catch (const InputError& error) {
    if (!options_.replace_undecodable()) throw;
    uint8_t seen = verdict_[static_cast<size_t>(candidate)].exchange(3);
    if (seen != 3) {
      ++undecodable_;
      const std::lock_guard<std::mutex> lock(undecodable_mutex_);
      if (first_undecodable_.empty()) first_undecodable_ = error.what();
    }
    return std::nullopt;
  }
}

io::Example SliceDataset::get(int64_t index) const {
  const int64_t n = size();
  int64_t candidate = index;
  torch::Tensor slab;
  const bool rejecting = options_.min_body_fraction() > 0;
  for (int attempt = 0; attempt < kRejectionTries; ++attempt) {
    if (attempt > 0)
      candidate = static_cast<int64_t>(mix_seed(static_cast<uint64_t>(index), attempt) %
                                       static_cast<uint64_t>(n));
    auto& verdict = verdict_[static_cast<size_t>(candidate)];
    if (verdict.load() == 3 || (rejecting && verdict.load() == 2)) continue;
    const auto read = try_read(candidate);
    if (!read) continue;
    slab = read->values;
    if (!rejecting || verdict.load() == 1) break;
    const bool keep = body_enough(*read);
    uint8_t unknown = 0;
    if (verdict.compare_exchange_strong(unknown, keep ? 1 : 2) && !keep) ++rejected_;
    if (keep) break;
  }
  if (!slab.defined()) {  // every try hit a slice already rejected: use the example's own
    candidate = index;
    const auto read = try_read(index);
    if (!read)
      throw InputError("no decodable slice found in " + std::to_string(kRejectionTries) +
                       " tries for example " + std::to_string(index) + " (e.g. " +
                       first_undecodable() + ")");
    slab = read->values;
  }
  if (slab.size(1) != options_.image_size() || slab.size(2) != options_.image_size())
    slab =
        F::interpolate(slab.unsqueeze(0),
                       F::InterpolateFuncOptions()
                           .size(std::vector<int64_t>{options_.image_size(), options_.image_size()})
                           .mode(torch::kBilinear)
                           .align_corners(false)
                           .antialias(true))
            .squeeze(0);
  return {slab.contiguous(), label_of(candidate)};
}

int64_t SliceDataset::get_into(int64_t index, torch::Tensor out) const {
  const auto [stack_index, slice] = index_.at(static_cast<size_t>(index));
  const Stack& stack = stacks_[static_cast<size_t>(stack_index)];
  const bool in_place = stack.series && options_.slab() == 1 && options_.min_body_fraction() <= 0 &&
                        stack.series->format.rows == options_.image_size() &&
                        stack.series->format.columns == options_.image_size();
  if (!in_place || verdict_[static_cast<size_t>(index)].load() == 3)
    return Dataset::get_into(index, out);
  const auto& s = stack.series->slices[static_cast<size_t>(slice)];
  try {
    io::read_dicom_frame(s.path, s.frame, out);
  } catch (const InputError&) {
    if (!options_.replace_undecodable()) throw;
    return Dataset::get_into(index, out);  // get() counts it and reads a replacement
  }
  return label_of(index);
}

io::CatalogItem SliceDataset::item(int64_t index) const {
  const auto [stack_index, slice] = index_.at(static_cast<size_t>(index));
  const Stack& stack = stacks_[static_cast<size_t>(stack_index)];
  std::string path;
  if (stack.series) {
    const auto& s = stack.series->slices[static_cast<size_t>(slice)];
    path = s.path;
    if (stack.series->ordered_by == "frame") path += "#frame=" + std::to_string(s.frame);
  } else {
    path = stack.volume_path + "#slice=" + std::to_string(slice);
  }
  return {path, stack.label, stack.split, "", ""};
}

std::string SliceDataset::first_undecodable() const {
  const std::lock_guard<std::mutex> lock(undecodable_mutex_);
  return first_undecodable_;
}

std::string SliceDataset::skipped_note() const {
  const int64_t rejected = rejected_.load(), undecodable = undecodable_.load();
  std::string note;
  if (rejected > 0)
    note = "rejected " + plural(rejected, "slice") + " so far as background (body fraction under " +
           std::to_string(options_.min_body_fraction()) + " at threshold " +
           std::to_string(options_.body_threshold()) + ")";
  if (undecodable > 0)
    note += (note.empty() ? "" : "; ") + std::string("replaced ") + plural(undecodable, "slice") +
            " whose pixels cannot be decoded (first: " + first_undecodable() + ")";
  return note;
}

void SliceDatasetOptions::visit_fields(FieldVisitor& visit) {
  visit("slab", slab_, Check::between(1, 63));
  visit("axis", axis_, Check::between(0, 2));
  visit("body_threshold", body_threshold_);
  visit("min_body_fraction", min_body_fraction_, Check::between(0, 1));
}

std::string SliceDataset::own_group(int64_t index, io::GroupBy by) const {
  const auto& stack = stacks_.at(static_cast<size_t>(index_.at(static_cast<size_t>(index)).first));
  const bool patient = by == io::GroupBy::kAuto || by == io::GroupBy::kPatient;
  if (!stack.series || !(patient || by == io::GroupBy::kSeries))
    return io::Dataset::own_group(index, patient ? io::GroupBy::kFile : by);
  if (patient && stack.series->patient_key != 0)
    return "patient:" + std::to_string(stack.series->patient_key);
  return "series:" + std::to_string(stack.series - dicom_.series.data());
}

std::vector<io::DatasetNote> SliceDataset::notes() const {
  std::vector<io::DatasetNote> notes;
  for (const auto& series : dicom_.series)
    if (series.missing_slices > 0)
      notes.push_back({io::DatasetNote::Severity::kWarning,
                       series.slices.front().path + ": its series seems to miss " +
                           plural(series.missing_slices, "slice") +
                           " (gaps along the slice normal)"});
  return notes;
}

std::string SliceDataset::summary() const {
  const int64_t volumes = static_cast<int64_t>(stacks_.size() - dicom_.series.size());
  std::string text = std::to_string(dicom_.series.size()) + " DICOM series (" +
                     plural(dicom_.patients, "patient") + "), " + plural(volumes, "volume") + ", " +
                     plural(size(), "slice");
  if (!dicom_.non_image_objects.empty())
    text += "; skipped " +
            plural(static_cast<int64_t>(dicom_.non_image_objects.size()), "non-image object") +
            " (structured reports, plans, presentation states)";
  if (!dicom_.bad_files.empty())
    text += "; skipped " + plural(static_cast<int64_t>(dicom_.bad_files.size()), "bad file");
  return text;
}

}  // namespace pretext::domains
