#include "io/volume.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <zlib.h>

#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>
#include <torch/types.h>

#include "base/errors.h"

namespace pretext::io {
namespace {

using Image = itk::Image<float, 3>;

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The ImageIO for a file, chosen from its content (and, for gzip and MetaImage headers, its name)
// rather than ITK's factory search, so that a volume is never read by a reader it was not meant
// for; null when the file is no volume.
struct VolumeReader {
  itk::ImageIOBase::Pointer io;
  std::string format;
};

VolumeReader image_io_for(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return {};
  char head[348] = {};
  file.read(head, sizeof head);
  const auto count = file.gcount();
  const auto starts = [&](const char* magic) {
    return count >= static_cast<std::streamsize>(std::strlen(magic)) &&
           std::memcmp(head, magic, std::strlen(magic)) == 0;
  };
  // NIfTI-1: "n+1\0" (single file) at byte 344; gzip-compressed when named .nii.gz.
  if ((count == sizeof head && std::memcmp(head + 344, "n+1", 4) == 0) ||
      (starts("\x1f\x8b") && ends_with(path, ".nii.gz")))
    return {itk::NiftiImageIO::New().GetPointer(), "NIfTI"};
  if (starts("NRRD000")) return {itk::NrrdImageIO::New().GetPointer(), "NRRD"};
  if ((ends_with(path, ".mha") || ends_with(path, ".mhd")) &&
      (starts("ObjectType") || starts("NDims")))
    return {itk::MetaImageIO::New().GetPointer(), "MetaImage"};
  return {};
}

void init_itk() {
  // ITK's warnings go to its own output window (stderr); a library never prints on its own here.
  static const bool quiet = [] {
    itk::Object::GlobalWarningDisplayOff();
    return true;
  }();
  (void)quiet;
}

std::string itk_reason(const itk::ExceptionObject& error) {
  return std::string("[ITK: ") + error.GetDescription() + "]";
}

}  // namespace

torch::Tensor Volume::sub_volume(const std::array<int64_t, 3>& start,
                                 const std::array<int64_t, 3>& size) const {
  auto view = voxels;
  for (int64_t axis = 0; axis < 3; ++axis) {
    const auto a = static_cast<size_t>(axis);
    TORCH_CHECK(start[a] >= 0 && size[a] > 0 && start[a] + size[a] <= voxels.size(axis),
                "sub-volume axis ", axis, " [", start[a], ", ", start[a] + size[a], ") outside 0..",
                voxels.size(axis));
    view = view.narrow(axis, start[a], size[a]);
  }
  return view;
}

bool is_volume_file(const std::string& path) { return image_io_for(path).io != nullptr; }

namespace {

// Opens the header and checks that the file is a scalar 3D volume.
VolumeReader open_header(const std::string& path) {
  init_itk();
  auto reader = image_io_for(path);
  if (!reader.io) throw InputError(path + ": not a NIfTI, NRRD or MetaImage volume");
  const std::string where = path + ": " + reader.format + ": ";
  try {
    reader.io->SetFileName(path);
    reader.io->ReadImageInformation();
  } catch (const itk::ExceptionObject& error) {
    throw InputError(where + "cannot read the header " + itk_reason(error));
  }
  if (reader.io->GetNumberOfDimensions() != 3)
    throw InputError(where + std::to_string(reader.io->GetNumberOfDimensions()) +
                     " dimensions (pretext reads 3D volumes)");
  if (reader.io->GetNumberOfComponents() != 1)
    throw InputError(where + std::to_string(reader.io->GetNumberOfComponents()) +
                     " components per voxel (pretext reads scalar volumes)");
  return reader;
}

int64_t file_size(const std::string& path) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  return error ? -1 : static_cast<int64_t>(size);
}

// ITK's NIfTI and MetaImage readers fill a truncated file's missing voxels with whatever the
// buffer held and report nothing, so the sizes are checked here first. Returns the reason, or "".
std::string incompleteness(const std::string& path, const VolumeReader& reader) {
  const auto voxel_bytes = static_cast<int64_t>(reader.io->GetImageSizeInBytes());
  const int64_t size = file_size(path);
  const auto short_by = [&](int64_t have, int64_t need, const std::string& what) {
    return have < need ? what + " holds " + std::to_string(have) + " bytes, the header needs " +
                             std::to_string(need) + " (truncated)"
                       : "";
  };
  if (reader.format == "NIfTI") {
    constexpr int64_t kHeaderBytes = 352;  // NIfTI-1 header and extension flag
    if (!ends_with(path, ".gz")) return short_by(size, kHeaderBytes + voxel_bytes, "the file");
    // ITK's gzip reader stops quietly at a truncated stream, so the stream is unpacked once
    // here to the end (a second decompression: volumes are cached after reading).
    gzFile gz = gzopen(path.c_str(), "rb");
    if (!gz) return "cannot open the gzip stream";
    std::vector<char> buffer(1 << 20);
    int64_t unpacked = 0;
    int got = 0;
    while ((got = gzread(gz, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0)
      unpacked += got;
    int code = Z_OK;
    const std::string message = got < 0 ? gzerror(gz, &code) : "";
    gzclose(gz);
    if (got < 0) return "the gzip stream is corrupt [zlib: " + message + "]";
    return short_by(unpacked, kHeaderBytes + voxel_bytes, "the gzip stream");
  }
  if (reader.format != "MetaImage") return "";
  // Header lines up to ElementDataFile; the data follows (LOCAL) or lies in the named file.
  std::ifstream file(path, std::ios::binary);
  std::string line, data_file;
  bool compressed = false;
  int64_t compressed_size = -1;
  while (std::getline(file, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const auto trim = [](std::string text) {
      const auto first = text.find_first_not_of(" \t\r");
      if (first == std::string::npos) return std::string();
      return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
    };
    const auto key = trim(line.substr(0, eq));
    const auto value = trim(line.substr(eq + 1));
    if (key == "CompressedData") compressed = value == "True" || value == "true";
    if (key == "CompressedDataSize") compressed_size = std::atoll(value.c_str());
    if (key == "ElementDataFile") {
      data_file = value;
      break;
    }
  }
  const int64_t need = compressed ? compressed_size : voxel_bytes;
  if (need < 0) return "";
  if (data_file == "LOCAL")
    return short_by(size - static_cast<int64_t>(file.tellg()), need, "the data");
  const auto external = (std::filesystem::path(path).parent_path() / data_file).string();
  return short_by(file_size(external), need, external);
}

}  // namespace

std::array<int64_t, 3> read_volume_shape(const std::string& path) {
  const auto reader = open_header(path);
  return {static_cast<int64_t>(reader.io->GetDimensions(2)),
          static_cast<int64_t>(reader.io->GetDimensions(1)),
          static_cast<int64_t>(reader.io->GetDimensions(0))};
}

Volume read_volume(const std::string& path) {
  const auto header = open_header(path);
  if (const auto reason = incompleteness(path, header); !reason.empty())
    throw InputError(path + ": " + header.format + ": cannot read: " + reason);
  auto [io, format] = header;
  Volume volume;
  volume.format = format;
  try {
    auto reader = itk::ImageFileReader<Image>::New();
    reader->SetImageIO(io);
    reader->SetFileName(path);
    reader->Update();
    Image::Pointer image = reader->GetOutput();
    const auto size = image->GetLargestPossibleRegion().GetSize();
    volume.voxels = torch::empty({static_cast<int64_t>(size[2]), static_cast<int64_t>(size[1]),
                                  static_cast<int64_t>(size[0])},
                                 torch::kFloat32);
    std::memcpy(volume.voxels.data_ptr<float>(), image->GetBufferPointer(),
                static_cast<size_t>(volume.voxels.nbytes()));
    for (unsigned a = 0; a < 3; ++a) {
      volume.spacing[a] = image->GetSpacing()[a];
      volume.origin[a] = image->GetOrigin()[a];
      for (unsigned b = 0; b < 3; ++b) volume.direction[a * 3 + b] = image->GetDirection()[a][b];
    }
  } catch (const itk::ExceptionObject& error) {
    throw InputError(path + ": " + volume.format + ": cannot read " + itk_reason(error));
  }
  return volume;
}

void write_volume(const std::string& path, const Volume& volume) {
  init_itk();
  auto image = Image::New();
  Image::SizeType size;
  for (unsigned a = 0; a < 3; ++a) size[a] = static_cast<size_t>(volume.voxels.size(2 - a));
  image->SetRegions(Image::RegionType(size));
  Image::SpacingType spacing;
  Image::PointType origin;
  Image::DirectionType direction;
  for (unsigned a = 0; a < 3; ++a) {
    spacing[a] = volume.spacing[a];
    origin[a] = volume.origin[a];
    for (unsigned b = 0; b < 3; ++b) direction[a][b] = volume.direction[a * 3 + b];
  }
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  const auto voxels = volume.voxels.to(torch::kFloat32).contiguous();
  std::memcpy(image->GetBufferPointer(), voxels.data_ptr<float>(),
              static_cast<size_t>(voxels.nbytes()));
  try {
    auto writer = itk::ImageFileWriter<Image>::New();
    if (ends_with(path, ".nii") || ends_with(path, ".nii.gz"))
      writer->SetImageIO(itk::NiftiImageIO::New());
    else if (ends_with(path, ".nrrd"))
      writer->SetImageIO(itk::NrrdImageIO::New());
    else if (ends_with(path, ".mha") || ends_with(path, ".mhd"))
      writer->SetImageIO(itk::MetaImageIO::New());
    else
      throw InputError(path + ": write .nii, .nii.gz, .nrrd or .mha");
    writer->SetFileName(path);
    writer->SetInput(image);
    writer->Update();
  } catch (const itk::ExceptionObject& error) {
    throw InputError(path + ": cannot write " + itk_reason(error));
  }
}

}  // namespace pretext::io
