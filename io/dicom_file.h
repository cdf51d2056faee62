#pragma once

// The DICOM file layer that io/dicom.cpp (headers, series) and io/dicom_pixels.cpp (decoding)
// share: loading through DCMTK, reading tags, the format checks. Internal to io.

#include <array>
#include <cstdint>
#include <optional>
#include <string>

// DCMTK wants its configuration header first.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>

#include "io/dicom.h"

namespace pretext::io::dicom {

/// "PATH: DICOM: reason", the form of every DICOM error.
std::string fail(const std::string& path, const std::string& reason);
/// "[DCMTK: what it said]".
std::string dcmtk_words(const OFCondition& status);
/// Why a file could not be parsed or read: "truncated: ..." when DCMTK's stream ended (or stopped
/// making sense) before the data set did, as files cut short in copying do.
std::string parse_failure(const OFCondition& status);

/// A tag's value as text, "" when absent.
std::string text(DcmItem& item, const DcmTagKey& tag);
/// A tag's value as a number (searching into sequences: enhanced multi-frame objects keep
/// rescale and spacing in functional groups), `fallback` when absent.
double number(DcmItem& item, const DcmTagKey& tag, double fallback);
int64_t integer(DcmItem& item, const DcmTagKey& tag, int64_t fallback);
/// A 16-bit value whose VR is US or SS as the pixel representation says (PixelPaddingValue, the
/// LUT descriptor's first mapped value); files disagree on the VR, the pixel representation wins.
std::optional<int64_t> pixel_value(DcmItem& item, const DcmTagKey& tag, bool is_signed,
                                   unsigned long position = 0);
/// N values of a multi-valued tag; false when it has fewer.
template <typename T, size_t N>
bool numbers(DcmItem& item, const DcmTagKey& tag, std::array<T, N>& out) {
  for (size_t i = 0; i < N; ++i) {
    Float64 value = 0;
    if (item.findAndGetFloat64(tag, value, static_cast<unsigned long>(i), OFTrue).bad())
      return false;
    out[i] = static_cast<T>(value);
  }
  return true;
}

/// A file loaded by DCMTK: its meta header and data set.
struct LoadedFile {
  DcmFileFormat file;
  DcmDataset* dataset = nullptr;
  std::string transfer_syntax;
};

/// Loads the meta header and data set; element values over 4 KiB (the pixel data) stay in the
/// file until asked for. Registers the codecs and silences the toolkits' logging on first use.
/// Throws InputError naming the file: no preamble and "DICM", a missing or unknown transfer
/// syntax, a data set that cannot be parsed (or is truncated).
void load(const std::string& path, LoadedFile& loaded);

/// What an object without pixel data is, from its SOP class (and modality), for messages: "a
/// structured report (BasicTextSRStorage), not an image".
std::string non_image_kind(DcmDataset& ds);
/// An image storage SOP class: such a file without pixel data lost them (or never got them).
bool is_image_class(DcmDataset& ds);
/// The reason given for an image without pixel data.
extern const char* const kNoPixels;

DicomPixelFormat pixel_format(DcmDataset& ds, const std::string& transfer_syntax);
/// Throws InputError naming the file for a format pretext cannot read.
void check_format(const std::string& path, const DicomPixelFormat& f);
bool is_ybr_full(const std::string& photometric);

/// Bytes of one frame of 8, 16 or 32 bits a sample; YBR_FULL_422 as stored has two samples a
/// pixel.
int64_t frame_bytes(const DicomPixelFormat& f, bool subsampled = false);
/// Bits of native pixel data `frames` frames need (1-bit data is packed, 8 pixels a byte).
int64_t native_bits(const DicomPixelFormat& f, int64_t frames);
/// The data set's pixel data; throws InputError (kNoPixels) when it has none.
DcmPixelData& pixel_data_of(const std::string& path, DcmDataset& ds);
/// Throws InputError ("truncated: ...") when native pixel data is shorter than `frames` need.
void check_native_length(const std::string& path, DcmDataset& ds, const DicomPixelFormat& f,
                         int64_t frames);

/// The uncompressed syntaxes: pixel data as stored, little or big endian, or deflated.
bool is_native(const std::string& transfer_syntax);
/// Syntaxes DCMTK decodes here, and the JPEG 2000 ones OpenJPEG decodes.
bool dcmtk_decodes(const std::string& transfer_syntax);
bool is_jpeg2000(const std::string& transfer_syntax);

}  // namespace pretext::io::dicom
