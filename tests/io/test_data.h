#pragma once

// Test data made on the spot: a private temporary folder per test, small rasters written through
// GDAL, and corrupted copies.

#include <cstdint>
#include <functional>
#include <string>

#include <ATen/Tensor.h>

namespace pretext::testing {

/// A fresh folder under $TMPDIR, removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  /// path() + "/" + name
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// Writes `pixels` [C, H, W] (values already in the type's range) with GDAL's `driver`
/// ("GTiff", "PNG", "JPEG"; PNG and JPEG through CreateCopy from memory), uint8 or uint16.
void write_raster(const std::string& path, const at::Tensor& pixels, const std::string& driver,
                  bool uint16 = false);

/// Keeps the first `fraction` of the file's bytes.
void truncate_file(const std::string& path, double fraction);
/// Writes `text` to `path`.
void write_text(const std::string& path, const std::string& text);
/// The message of the InputError `action` throws, or "no error".
std::string input_error_of(const std::function<void()>& action);
/// Runs a shell command; returns its exit status and fills `output` with stdout + stderr.
int run_command(const std::string& command, std::string* output);

}  // namespace pretext::testing
