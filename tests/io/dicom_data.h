#pragma once

// DICOM test data written with DCMTK (and GDCM for JPEG 2000): small CT-like images with known
// stored values, in any transfer syntax, carrying recognisable identifiers that must never leak.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

namespace pretext::testing {

/// Identifiers written into every test file; a privacy test searches outputs for each.
extern const char* const kPatientName;
extern const char* const kPatientId;
extern const char* const kBirthDate;
extern const char* const kAccession;
extern const char* const kInstitution;
extern const char* const kPhysician;
/// Every UID the writer makes starts with this (a private root).
extern const char* const kUidRoot;

struct DicomSpec {
  /// Stored values [frames, rows, columns] or [rows, columns] (one frame), or [3, rows, columns]
  /// with `samples_per_pixel` 3 (written interleaved or planar per `planar`).
  at::Tensor stored;
  std::string transfer_syntax = "1.2.840.10008.1.2.1";
  std::string modality = "CT";
  std::string photometric = "MONOCHROME2";
  int bits_allocated = 16;
  int bits_stored = 12;
  bool is_signed = false;
  int samples_per_pixel = 1;
  bool planar = false;
  double slope = 1.0;
  double intercept = -1024.0;
  /// ImagePositionPatient z (mm); the images are axial (orientation 1\0\0\0\1\0).
  double z = 0.0;
  bool with_position = true;
  int instance = 1;
  std::string series = "1";  ///< appended to kUidRoot for SeriesInstanceUID
  std::string patient_id = kPatientId;
  std::array<double, 2> pixel_spacing{0.7, 0.7};
  double slice_thickness = 2.5;
  bool with_pixel_data = true;
  /// A structured report (no pixel data, no Rows) instead of an image.
  bool structured_report = false;
  /// Another object without pixels (an RT plan, a waveform): its SOP class UID, with `modality`.
  std::string non_image_class;
  /// PixelPaddingValue and PixelPaddingRangeLimit, as stored values.
  std::optional<int> padding_value, padding_limit;
  /// A Modality LUT Sequence (16-bit entries from stored value `lut_first` on) in place of
  /// rescale slope and intercept.
  std::vector<int> modality_lut;
  int lut_first = 0;
  /// The first bytes of the 128-byte preamble (e.g. a TIFF header, as dual-personality files
  /// have).
  std::string preamble;
};

/// Writes `spec` as a DICOM Part 10 file. Compressed syntaxes go through DCMTK's encoders (RLE,
/// JPEG baseline / extended / lossless, JPEG-LS) or GDCM's (JPEG 2000: lossless 4.90, lossy
/// 4.91). BitsAllocated 1 is packed 8 pixels a byte (least significant bit first), 32 is written
/// as OW words in the syntax's byte order, YBR_FULL_422 keeps the chroma of each pair's first
/// pixel.
void write_dicom(const std::string& path, const DicomSpec& spec);

/// An axial CT series of `slices` files with known Hounsfield units: slice s, row r, column c
/// holds HU = -1000 + 10 * (s * 64 + r * 8 + c) (rows and columns 8), stored as HU + 1024.
/// Slices are z = 2.5 * s mm apart; files are named in shuffled order.
at::Tensor known_hu(int64_t slices, int64_t rows = 8, int64_t columns = 8);
void write_ct_series(const std::string& folder, int64_t slices, const std::string& transfer_syntax,
                     const std::string& series = "1");

}  // namespace pretext::testing
