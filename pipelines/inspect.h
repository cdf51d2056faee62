#pragma once

#include <string>

namespace pretext::pipelines {

/// What the reader sees in `path`.
///  - A raster: format, size, bands with type, description and nodata, and the georeference;
///    with `stats`, the min / mean / max of each band's decoded values (nodata excluded), read in
///    strips so a large raster is never held whole.
///  - A DICOM file or a folder of them: per series the modality, rows x columns x slices, pixel
///    and slice spacing, transfer syntax, photometric interpretation, bits and rescale, and
///    nothing identifying; with `stats`, min / mean / max after rescale (Hounsfield units for
///    CT), slice by slice.
///  - A volume (NIfTI, NRRD, MetaImage): size, spacing, origin, direction; with `stats`, min /
///    mean / max.
/// Throws InputError.
std::string inspect(const std::string& path, bool stats);

}  // namespace pretext::pipelines
