#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "io/bad_file.h"
#include "io/catalog.h"
#include "io/source.h"

namespace pretext::io {

/// How the pixels of one DICOM image object are stored and what they mean. Holds nothing that
/// identifies a patient, a study or an institution: those tags are read only to group files and
/// are kept as salted hashes (see DicomHeader::series_key).
struct DicomPixelFormat {
  std::string modality;              ///< "CT", "MR", "CR", ...; "" when the file has none
  std::string transfer_syntax;       ///< UID, e.g. "1.2.840.10008.1.2.4.70"
  std::string transfer_syntax_name;  ///< e.g. "JPEG Lossless, Non-hierarchical, First-Order..."
  std::string photometric;           ///< as stored: MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, ...
  int64_t rows = 0;
  int64_t columns = 0;
  int64_t samples_per_pixel = 1;
  int64_t bits_allocated = 16;
  int64_t bits_stored = 16;
  bool is_signed = false;  ///< PixelRepresentation 1
  double rescale_slope = 1.0;
  double rescale_intercept = 0.0;
  /// A Modality LUT Sequence maps stored values instead of slope and intercept (its entries are
  /// read with the pixels, not kept here).
  bool has_modality_lut = false;
  /// PixelPaddingValue and PixelPaddingRangeLimit as stored values (before rescale): pixels whose
  /// stored value lies between the two (inclusive; equal to the value when there is no limit)
  /// are outside the scanned field of view, not tissue.
  std::optional<int64_t> padding_value;
  std::optional<int64_t> padding_limit;
  /// mm between the centres of adjacent rows and of adjacent columns; 0 when the file has none.
  std::array<double, 2> pixel_spacing{0.0, 0.0};
  double slice_thickness = 0.0;  ///< mm; 0 when the file has none
};

/// One DICOM file's header, read without its pixel data.
struct DicomHeader {
  std::string path;
  DicomPixelFormat format;
  int64_t frames = 1;
  int64_t instance_number = 0;
  bool has_position = false;
  std::array<double, 3> position{};     ///< ImagePositionPatient, mm
  std::array<double, 6> orientation{};  ///< ImageOrientationPatient: row then column direction
  bool has_orientation = false;
  double spacing_between_slices = 0.0;  ///< mm, SpacingBetweenSlices; 0 when absent
  /// Empty for an image; otherwise what the object is, e.g. "a structured report (Basic Text SR
  /// Storage)", "an RT plan (RT Plan Storage)", "a waveform (12-lead ECG Waveform Storage)".
  std::string non_image;
  bool is_image() const { return non_image.empty(); }
  /// Salted hashes of SeriesInstanceUID and PatientID: equal within one process for equal values,
  /// meaningless outside it, and never written anywhere. patient_key 0: no PatientID.
  uint64_t series_key = 0;
  uint64_t patient_key = 0;
};

/// Reads the header of a DICOM Part 10 file (preamble, "DICM", file meta information). Throws
/// InputError naming the file and the reason: unreadable, truncated, no meta header, a transfer
/// syntax DCMTK does not know, an image without pixel data or whose pixel data is shorter than its
/// frames need. A file without pixel data that is no image (a structured report, an RT plan, a
/// waveform) is returned with `non_image` saying what it is.
DicomHeader read_dicom_header(const std::string& path);

/// Whether pretext can decode the pixels of `transfer_syntax` (DCMTK's codecs, or GDCM for
/// JPEG 2000).
bool dicom_decodable(const std::string& transfer_syntax);

/// One decoded frame.
struct DicomFrame {
  at::Tensor values;  ///< float32 [C, H, W]
  /// bool [H, W], false at padding pixels; undefined when the file declares no PixelPaddingValue.
  at::Tensor valid;
};

/// Decodes frame `frame` (0-based) of `path` to float32 [C, H, W]: the Modality LUT or rescale
/// slope and intercept applied (Hounsfield units for CT), BitsStored and PixelRepresentation
/// honoured, 1-bit masks unpacked to 0 / 1, MONOCHROME1 inverted (over the range the stored
/// values map to, so that higher always means brighter), colour returned as RGB planes whatever
/// the planar configuration (YBR_FULL and YBR_FULL_422 converted as PS3.3 C.7.6.3.1.2 says,
/// rounded and clamped to the stored range). Padding pixels get the value air has: -1000 HU for
/// CT, the lowest value of the stored range otherwise, and are false in `valid`. Compressed
/// pixel data is decoded by DCMTK, or by GDCM (JPEG 2000, and whatever DCMTK's codecs refuse).
/// Reads only that file, and for uncompressed multi-frame objects only that frame. With `out`
/// (float32, contiguous, of the frame's shape) the values are written there, saving a copy when
/// filling a batch. Throws InputError naming the file and the reason (each toolkit's words).
DicomFrame decode_dicom_frame(const std::string& path, int64_t frame = 0, at::Tensor out = {});
/// decode_dicom_frame's values.
at::Tensor read_dicom_frame(const std::string& path, int64_t frame = 0, at::Tensor out = {});

/// One image plane of a series: a frame of a file.
struct DicomSlice {
  std::string path;
  int64_t frame = 0;
  double location = 0.0;  ///< mm along the slice normal (or the instance number when unknown)
};

/// The slices of one series in anatomical order.
struct DicomSeries {
  DicomPixelFormat format;
  std::vector<DicomSlice> slices;
  /// mm between adjacent slice centres (median), 0 for a single slice or unknown geometry.
  double slice_spacing = 0.0;
  /// How the order was found: "position" (ImagePositionPatient along the normal), "position,
  /// then instance" (phases), "instance" (InstanceNumber) or "frame" (a multi-frame object's
  /// frame order).
  std::string ordered_by;
  /// Images per position: more than 1 when every position of the series holds the same number
  /// (cine MR, perfusion CT); they are kept in InstanceNumber order, not taken for duplicates.
  int64_t phases = 1;
  /// Slices that seem to be missing: gaps wider than 1.5 x the median spacing, in slices.
  int64_t missing_slices = 0;
  uint64_t patient_key = 0;  ///< the first file's (DicomHeader::patient_key; 0: no PatientID)
  /// Every transfer syntax among the series' files, "UID (name)", sorted.
  std::vector<std::string> transfer_syntaxes;
  std::string label;  ///< from the catalog; every file of a series must agree
  std::string split;
};

/// The DICOM series found among a catalog's files.
struct DicomScan {
  std::vector<DicomSeries> series;  ///< ordered by their first file's path
  int64_t files = 0;                ///< DICOM image files used
  /// SR, RT plans, waveforms, presentation states: skipped; each message names the file and
  /// what it is.
  std::vector<BadFile> non_image_objects;
  int64_t duplicate_slices = 0;    ///< a second file at an occupied position: skipped
  std::vector<BadFile> bad_files;  ///< skipped under kSkip
  int64_t patients = 0;            ///< distinct PatientID values
};

/// Groups the DICOM files of `items` by SeriesInstanceUID (not by folder) and orders each series'
/// slices along the slice normal (ImagePositionPatient . (row x column direction)), falling back
/// to InstanceNumber. A file that cannot be read, an image whose rows, columns or samples differ
/// from the rest of its series (the majority wins), and a second file at an occupied position
/// (slice spacing zero) are bad files: `on_bad` decides whether they stop the scan (InputError)
/// or are skipped and listed. Throws InputError when no series remains: for a single file its own
/// reason (what the object is, or why it cannot be read).
DicomScan scan_dicom(const std::vector<CatalogItem>& items, OnBadFile on_bad);

/// A single DICOM image file as a Source (frame 0, all samples as bands, values after rescale), so
/// that 2D DICOM images (radiographs, secondary captures) can be read like any other image.
class DicomImage : public Source {
 public:
  explicit DicomImage(const std::string& path);
  const SourceInfo& info() const override { return info_; }
  Patch read(const Region& region, const std::vector<int64_t>& bands = {}) override;
  bool shareable_between_threads() const override { return true; }

 private:
  SourceInfo info_;
};

}  // namespace pretext::io
