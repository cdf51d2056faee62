#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pretext::io {

/// A JPEG 2000 image as OpenJPEG decodes it: the multi-component transform (DICOM's YBR_RCT /
/// YBR_ICT) undone, samples interleaved.
struct Jpeg2000Image {
  int64_t width = 0;
  int64_t height = 0;
  int64_t components = 0;
  int64_t precision = 0;  ///< bits per sample the codestream says
  bool is_signed = false;
  std::vector<int32_t> samples;  ///< [height, width, components]
};

/// Decodes a raw codestream or a JP2 file (some DICOM writers wrap the codestream in one). Throws
/// std::runtime_error with OpenJPEG's own words when it cannot.
Jpeg2000Image decode_jpeg2000(const uint8_t* data, size_t size);

}  // namespace pretext::io
