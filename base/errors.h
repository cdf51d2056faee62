#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace pretext {

/// A data file we cannot use. The message names the file, what is wrong and what the library said.
/// what(): "scans/07.tif: GeoTIFF: cannot read window 0,0 32x32 [GDAL: TIFFReadEncodedStrip()
/// failed]"
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// When an option of the reader would change the outcome: `option` is its field name in the
  /// Options the thrower was given (as their visit_fields names it, e.g.
  /// "fallback_microns_per_pixel"), and whoever knows the config adds where it is set, parsing
  /// no message.
  InputError(const std::string& message, std::string option)
      : std::runtime_error(message), option_(std::move(option)) {}
  /// Empty unless an option would change the outcome.
  const std::string& option() const { return option_; }

 private:
  std::string option_;
};

/// A config we cannot run. what(): "configs/demo.yaml:12: method.temprature: unknown key"
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  /// About one key, raised where the key's meaning is known but not where it was written (a
  /// method checking its options): what() is "section.key: reason", and the config reader
  /// rethrows it with the key's file and line from the fields, parsing no message.
  ConfigError(std::string section, std::string key, std::string reason)
      : std::runtime_error(section + "." + key + ": " + reason),
        section_(std::move(section)),
        key_(std::move(key)),
        reason_(std::move(reason)) {}
  /// Empty unless raised about one key.
  const std::string& section() const { return section_; }
  const std::string& key() const { return key_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string section_, key_, reason_;
};

/// A data-parallel job that cannot go on: a rank died or a collective did not complete in time.
/// what(): "rank 1 of 2: all-reduce of the gradients at step 12: [gloo] Connection reset by peer"
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pretext
