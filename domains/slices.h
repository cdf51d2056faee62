#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/Tensor.h>
#include <torch/arg.h>

#include "io/catalog.h"
#include "io/dataset.h"
#include "io/dicom.h"
#include "io/volume.h"

namespace pretext::domains {

/// How DICOM series and volumes become 2D (or 2.5D) training examples.
///   SliceDataset slices(catalog, SliceDatasetOptions().image_size(224).slab(3));
struct SliceDatasetOptions {
  /// Side of the square example in pixels; each slice is resampled (bilinear, antialiased) to it.
  TORCH_ARG(int64_t, image_size) = 224;
  /// Adjacent slices stacked as channels (2.5D), centred on the sampled slice and repeated at
  /// the ends of a stack; odd. 1 gives plain 2D slices.
  TORCH_ARG(int64_t, slab) = 1;
  /// Volumes: the tensor axis slices are taken along (0: k, the axial stack of a usual CT/MR
  /// volume; 1: j; 2: i). DICOM series are always sliced as acquired.
  TORCH_ARG(int64_t, axis) = 0;
  /// Background rejection (pretraining only): a slice counts as body where its values (after
  /// rescale: Hounsfield units for CT) exceed `body_threshold` outside the DICOM padding (pixels
  /// at PixelPaddingValue are never body, and read as air), and a slice whose body fraction
  /// is under `min_body_fraction` (mostly air or padding) is replaced by another. 0 keeps all.
  TORCH_ARG(double, body_threshold) = -500.0;
  TORCH_ARG(double, min_body_fraction) = 0.0;
  /// Bad DICOM files (unreadable, inconsistent, duplicate): stop, or skip and count them.
  TORCH_ARG(io::OnBadFile, on_bad_file) = io::OnBadFile::kFail;
  /// Pretraining under kSkip: a slice whose pixels turn out undecodable when read (the scan reads
  /// headers only) is replaced by another, like a background slice, and counted; otherwise
  /// reading it throws InputError naming the file. Evaluation keeps every example its own.
  TORCH_ARG(bool, replace_undecodable) = false;
  /// Decoded volumes kept in memory (NIfTI/NRRD/MetaImage files are read whole).
  TORCH_ARG(int64_t, volume_cache) = 4;

 public:
  /// slab, axis, body_threshold, min_body_fraction: what a config sets (image size and
  /// on_bad_file are shared by every kind of data; the rest is the pipeline's).
  void visit_fields(FieldVisitor& visit);
};

/// The slices of a catalog's DICOM series (grouped and ordered by io::scan_dicom) and volumes,
/// one example per slice. Reading slice i opens only the files of its slab: a 1,000-slice series
/// is never loaded whole. Examples hold the values as decoded (Hounsfield units for CT); the
/// augmentation's window maps them to [0, 1].
class SliceDataset : public io::Dataset {
 public:
  /// `catalog` holds DICOM files and volumes only. Throws InputError naming the file for a bad
  /// file under kFail, a volume that cannot be read, or a catalog with no usable slice.
  SliceDataset(const io::Catalog& catalog, SliceDatasetOptions options);

  int64_t size() const override { return static_cast<int64_t>(index_.size()); }
  /// The slab of slice `index` resampled to image_size. With background rejection, a rejected
  /// slice is replaced by the next acceptable one of a deterministic sequence; the verdict is
  /// kept, so a rejected slice is read once per run.
  io::Example get(int64_t index) const override;
  /// Decodes a plain DICOM slice straight into the batch when nothing is to be resampled.
  int64_t get_into(int64_t index, at::Tensor out) const override;
  int64_t channels() const override { return channels_; }
  const std::vector<std::string>& class_names() const override { return class_names_; }
  /// DICOM: the slice's file (with "#frame=N" for multi-frame objects); volume: "path#slice=N".
  io::CatalogItem item(int64_t index) const override;
  std::string skipped_note() const override;

  /// The slab around slice `slice` of stack `stack` at its own size: float32 [channels, H, W].
  at::Tensor read_slab(int64_t stack, int64_t slice) const {
    return read_slab_valid(stack, slice).values;
  }
  /// "2 DICOM series (1 patient), 1 volume, 84 slices", then what the scan skipped.
  std::string summary() const override;
  /// The DICOM files the scan skipped under kSkip.
  std::vector<io::BadFile> bad_files() const override { return dicom_.bad_files; }
  /// A warning per series with gaps along the slice normal.
  std::vector<io::DatasetNote> notes() const override;

 protected:
  /// DICOM: the patient (kAuto, kPatient; the series without a PatientID) or the series; volumes:
  /// the file.
  std::string own_group(int64_t index, io::GroupBy by) const override;

 public:
  const io::DicomScan& dicom() const { return dicom_; }

 private:
  struct Stack {
    const io::DicomSeries* series = nullptr;  ///< into dicom_, or null for a volume
    std::string volume_path;
    int64_t slices = 0;
    std::string label, split;
  };
  /// A slab and which pixels of its centre slice are real (undefined when all are: no padding).
  struct Slab {
    at::Tensor values;
    at::Tensor centre_valid;
  };
  Slab read_slab_valid(int64_t stack, int64_t slice) const;
  std::shared_ptr<const io::Volume> volume(const std::string& path) const;
  /// Whether a slab's centre slice has enough body to train on; padding is never body.
  bool body_enough(const Slab& slab) const;

  SliceDatasetOptions options_;
  io::DicomScan dicom_;
  std::vector<Stack> stacks_;
  std::vector<std::pair<int64_t, int64_t>> index_;  // example -> (stack, slice)
  std::vector<std::string> class_names_;
  int64_t channels_ = 0;

  /// Reads a candidate's slab; nullopt when it cannot be decoded and may be replaced.
  std::optional<Slab> try_read(int64_t candidate) const;
  std::string first_undecodable() const;

  // 0 unknown, 1 kept, 2 rejected as background, 3 undecodable
  mutable std::unique_ptr<std::atomic<uint8_t>[]> verdict_;
  mutable std::atomic<int64_t> rejected_{0};
  mutable std::atomic<int64_t> undecodable_{0};
  mutable std::mutex undecodable_mutex_;
  mutable std::string first_undecodable_;  // guarded by undecodable_mutex_
  mutable std::mutex volume_mutex_;
  mutable std::list<std::pair<std::string, std::shared_ptr<const io::Volume>>> volumes_;
};

}  // namespace pretext::domains
