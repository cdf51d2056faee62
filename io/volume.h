#pragma once

#include <array>
#include <cstdint>
#include <string>

#include <ATen/Tensor.h>

namespace pretext::io {

/// A 3D medical volume (NIfTI, NRRD, MetaImage) read whole through ITK.
struct Volume {
  /// float32 [depth, height, width]: ITK's index (i, j, k) is voxels[k][j][i]. NIfTI's scl_slope
  /// and scl_inter are applied.
  at::Tensor voxels;
  std::array<double, 3> spacing{1, 1, 1};  ///< mm along i, j, k
  std::array<double, 3> origin{};          ///< mm, physical position of voxel (0, 0, 0)
  /// Direction cosines, row-major 3x3: column c is the physical direction of index axis c.
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};
  std::string format;  ///< "NIfTI", "NRRD" or "MetaImage"

  /// The sub-volume starting at tensor index `start` of `size` voxels (a view, no copy).
  at::Tensor sub_volume(const std::array<int64_t, 3>& start,
                        const std::array<int64_t, 3>& size) const;
};

/// Whether `path` holds a volume ITK reads here, judged from its content: NIfTI-1 (.nii, or
/// gzip-compressed .nii.gz), NRRD, or MetaImage (.mha, .mhd).
bool is_volume_file(const std::string& path);

/// Voxels along tensor axes 0, 1, 2 (k, j, i), from the header alone.
std::array<int64_t, 3> read_volume_shape(const std::string& path);

/// Reads a 3D volume. Throws InputError naming the file and ITK's reason (unreadable, truncated,
/// not 3D).
Volume read_volume(const std::string& path);

/// Writes `volume` in the format its file name calls for (.nii, .nii.gz, .nrrd, .mha); for tests
/// and conversions. Throws InputError with ITK's reason.
void write_volume(const std::string& path, const Volume& volume);

}  // namespace pretext::io
