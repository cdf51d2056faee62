#pragma once

#include <string>

namespace pretext::pipelines {

/// What the reader sees in `path`: format, size, bands with type, description and nodata, and
/// the georeference; with `stats`, the min / mean / max of each band's decoded values (nodata
/// excluded), read in strips so a large raster is never held whole. Throws InputError.
std::string inspect(const std::string& path, bool stats);

}  // namespace pretext::pipelines
