#pragma once

#include <stdexcept>
#include <string>

namespace pretext {

/// A data file we cannot use. The message names the file, what is wrong and what the library said.
/// what(): "scans/07.tif: GeoTIFF: cannot read window 0,0 32x32 [GDAL: TIFFReadEncodedStrip()
/// failed]"
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A config we cannot run. what(): "configs/demo.yaml:12: method.temprature: unknown key"
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pretext
