#include "io/source.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "base/errors.h"
#include "io/dicom.h"
#include "io/gdal_raster.h"
#include "io/slide.h"
#include "io/volume.h"

namespace pretext::io {

std::string to_string(DataType type) {
  switch (type) {
    case DataType::kUInt8:
      return "uint8";
    case DataType::kUInt16:
      return "uint16";
    case DataType::kInt16:
      return "int16";
    case DataType::kUInt32:
      return "uint32";
    case DataType::kInt32:
      return "int32";
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat64:
      return "float64";
    case DataType::kOther:
      break;
  }
  return "other";
}

double full_scale(DataType type) {
  switch (type) {
    case DataType::kUInt8:
      return 255.0;
    case DataType::kUInt16:
      return 65535.0;
    case DataType::kUInt32:
      return 4294967295.0;
    default:
      return 1.0;
  }
}

namespace {

/// The container by its first bytes.
Format stored_format(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
  unsigned char head[132] = {};
  file.read(reinterpret_cast<char*>(head), sizeof head);
  const auto starts_with = [&](std::initializer_list<unsigned char> magic) {
    return static_cast<size_t>(file.gcount()) >= magic.size() &&
           std::equal(magic.begin(), magic.end(), head);
  };
  // DICOM Part 10: a 128-byte preamble, then "DICM". First, since the preamble may hold anything,
  // a TIFF header among others (dual-personality DICOM / TIFF files).
  if (file.gcount() == sizeof head && std::equal(head + 128, head + 132, "DICM"))
    return Format::kDicom;
  // Classic TIFF (42) and BigTIFF (43), both byte orders.
  if (starts_with({'I', 'I', 42, 0}) || starts_with({'M', 'M', 0, 42}) ||
      starts_with({'I', 'I', 43, 0}) || starts_with({'M', 'M', 0, 43}))
    return Format::kTiff;
  if (starts_with({0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})) return Format::kPng;
  if (starts_with({0xff, 0xd8, 0xff})) return Format::kJpeg;
  if (is_volume_file(path)) return Format::kVolume;
  return Format::kUnknown;
}

}  // namespace

Format detect_format(const std::string& path) {
  const Format stored = stored_format(path);
  // Slides are TIFF (Aperio, Philips, Ventana, generic), or formats of their own (MIRAX's and
  // Hamamatsu VMS's index files); DICOM, PNG, JPEG and volumes are not.
  const bool may_be_slide = stored == Format::kTiff || stored == Format::kUnknown;
  return may_be_slide && is_whole_slide(path) ? Format::kSlide : stored;
}

std::unique_ptr<Source> open(const std::string& path) {
  // By the container alone: this runs on every read of a whole image, where asking OpenSlide
  // (and for a generic tiled TIFF, GDAL and OpenSlide again) would cost each read. A TIFF-based
  // slide is read whole through GDAL, as detect_format's kSlide would have it.
  switch (stored_format(path)) {
    case Format::kTiff:
    case Format::kPng:
    case Format::kJpeg:
      return std::make_unique<GdalRaster>(path);
    case Format::kDicom:
      return std::make_unique<DicomImage>(path);
    case Format::kVolume:
      throw InputError(path + ": a 3D volume, read slice by slice through a volume data set");
    case Format::kSlide:
    case Format::kUnknown:
      break;
  }
  if (is_whole_slide(path))
    throw InputError(path + ": a whole-slide image, read tile by tile as a slide");
  throw InputError(path + ": not an image format pretext reads (GeoTIFF/TIFF, PNG, JPEG, DICOM)");
}

}  // namespace pretext::io
