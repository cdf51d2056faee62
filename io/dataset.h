#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>

#include "base/fields.h"
#include "io/bad_file.h"
#include "io/catalog.h"

namespace pretext::io {

/// One decoded training example: float32 pixels [C, H, W] and a class index (-1: unlabelled).
struct Example {
  at::Tensor pixels;
  int64_t label = -1;
};

/// Something a data set noticed while opening it, for the run log.
struct DatasetNote {
  /// kDetail: the run log only (a line per file, say); kWarning: the console too (something the
  /// user should know changed what is read, such as a resolution assumed for a slide).
  enum class Severity { kDetail, kWarning };
  Severity severity = Severity::kDetail;
  std::string text;
};

/// What ties examples together, so that an evaluation split keeps them on one side (slices of one
/// patient, tiles of one slide, windows and dates of one place). kAuto: a manifest's group
/// column, else the data set's natural unit (DICOM: the patient, or the series without a
/// PatientID; volumes and images: the file; slides: the slide; rasters: the place). kNone: every
/// example on its own.
enum class GroupBy { kAuto, kPatient, kSeries, kSlide, kPlace, kFile, kNone };
inline const EnumNames<GroupBy>& field_names(GroupBy) {
  static const EnumNames<GroupBy> names = {
      {"auto", GroupBy::kAuto},   {"patient", GroupBy::kPatient}, {"series", GroupBy::kSeries},
      {"slide", GroupBy::kSlide}, {"place", GroupBy::kPlace},     {"file", GroupBy::kFile},
      {"none", GroupBy::kNone}};
  return names;
}

/// An indexable data set; `get` is called from several loader threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index) const = 0;
  /// Writes example `index` into `out` (a slot of a batch, shaped like the batch's first
  /// example) and returns its label; readers that can decode in place override it to save a
  /// copy. Throws InputError naming the file when the example's shape differs.
  virtual int64_t get_into(int64_t index, at::Tensor out) const;
  /// Bands of every example.
  virtual int64_t channels() const = 0;
  /// Sorted distinct non-empty labels; a label's class index is its position here.
  virtual const std::vector<std::string>& class_names() const = 0;
  /// Where example `index` comes from (file path, label, split).
  virtual CatalogItem item(int64_t index) const = 0;
  /// Acquisition date of each frame of example `index` (one for a single image), as days since
  /// 1970-01-01; empty when unknown.
  virtual std::vector<int64_t> acquired_at(int64_t /*index*/) const { return {}; }
  /// Class index of example `index`, -1 when it has no single label (none, or a multi-label
  /// data set's).
  int64_t label_of(int64_t index) const;
  /// Whether examples carry several labels each (a manifest `labels` column).
  virtual bool multi_label() const { return false; }
  /// Class indices of every label of example `index`, ascending (at most one unless
  /// multi_label()); empty when it has none.
  std::vector<int64_t> label_set(int64_t index) const;
  /// What opening found, told the same way by every data set: one line of what it holds
  /// ("3 slides, 412 tissue tiles of 960 ..."), the files it left out under OnBadFile::kSkip, and
  /// notes.
  virtual std::string summary() const = 0;
  virtual std::vector<BadFile> bad_files() const { return {}; }
  virtual std::vector<DatasetNote> notes() const { return {}; }
  /// What reading has skipped so far, for the run log ("" when nothing).
  virtual std::string skipped_note() const { return ""; }
  /// The group of example `index` under `by`, as a key that is equal for examples of one group
  /// and means nothing outside this process ("" under kNone: the example stands alone). Never
  /// log or store it: it may derive from a patient identifier. Throws InputError when this kind
  /// of data has no such group (a patient of a raster).
  std::string group_of(int64_t index, GroupBy by) const;

 protected:
  /// The data set's own grouping (not kNone; kAuto without a manifest group): the file of the
  /// example here; data sets that know patients, slides or places override it.
  virtual std::string own_group(int64_t index, GroupBy by) const;
};

/// How whole images become fixed-size examples.
///   ImageDataset data(catalog, ImageDatasetOptions().image_size(32).bands({4, 3, 2}));
struct ImageDatasetOptions {
  /// Side of the square example in pixels; each image is resampled (bilinear) to it.
  TORCH_ARG(int64_t, image_size) = 32;
  /// 1-based bands to read, in order; empty reads all bands.
  TORCH_ARG(std::vector<int64_t>, bands) = {};
  /// Stored values are multiplied by this; 0 divides by the type's full scale (255 for uint8,
  /// 65535 for uint16, 1 for signed and float types).
  TORCH_ARG(double, value_scale) = 0.0;
  /// Decoded examples kept in memory after their first read, up to this many MiB (0: none);
  /// later epochs then skip opening and decoding files. A data set of N single-band 28x28 images
  /// takes N * 3 KiB.
  TORCH_ARG(int64_t, cache_mb) = 0;

 public:
  /// value_scale and cache_mb (image size and bands are shared by every kind of data and set by
  /// whoever reads all of them).
  void visit_fields(FieldVisitor& visit);
};

/// Each catalog item read whole through `io::open` and resampled to `image_size`, in one RasterIO
/// call (GDAL picks overviews when the file has them).
class ImageDataset : public Dataset {
 public:
  ImageDataset(Catalog catalog, ImageDatasetOptions options);
  int64_t size() const override { return catalog_.size(); }
  /// Throws InputError naming the file when it cannot be read or its band count differs from the
  /// first image's. With a cache the pixels may be shared with later calls: read, never modify.
  Example get(int64_t index) const override;
  /// Bands of every example (read from the first image when `bands` is empty).
  int64_t channels() const override { return channels_; }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  CatalogItem item(int64_t index) const override;
  bool multi_label() const override { return catalog_.multi_label(); }
  /// "N images, C bands, L labels".
  std::string summary() const override;

 private:
  Catalog catalog_;
  ImageDatasetOptions options_;
  Example decode(int64_t index) const;

  std::vector<std::string> class_names_;
  int64_t channels_ = 0;
  mutable std::mutex cache_mutex_;
  mutable std::vector<at::Tensor> cache_;  // guarded by cache_mutex_; undefined: not cached
  mutable int64_t cached_bytes_ = 0;       // guarded by cache_mutex_
};

}  // namespace pretext::io
